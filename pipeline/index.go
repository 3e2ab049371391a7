package pipeline

// Member is one top-level member of a JSON object: slices of the record
// (the key without quotes).
type Member struct {
	Key     []byte
	Escaped bool // the key holds escape sequences
	Value   []byte
}

// RawRecord is a record's JSON and, when the reader indexed it while
// finding where it ends, its top-level members (nil otherwise). Both point
// into the reader's buffer: valid only during the call they are given to.
type RawRecord struct {
	Data    []byte
	Members []Member
}

// IndexObject reads the JSON object at the start of data (which may go on
// past it: the next records of a stream) and appends its top-level members
// to dst. It returns them and the offset just past the object's '}', or
// false if data does not start with a well-formed object or the object is
// cut short. Like ScanObject, it checks the structure, not the scalars.
func IndexObject(data []byte, dst []Member) ([]Member, int, bool) {
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return dst, 0, false
	}
	i++
	for first := true; ; first = false {
		i = skipWS(data, i)
		if i >= len(data) {
			return dst, 0, false
		}
		if data[i] == '}' && first {
			return dst, i + 1, true
		}
		if data[i] != '"' {
			return dst, 0, false
		}
		kEnd, escaped := scanString(data, i)
		if kEnd < 0 {
			return dst, 0, false
		}
		key := data[i+1 : kEnd-1]
		// Compact JSON (CloudTrail's) has no space around ':' and ',':
		// test for them before skipping any.
		i = kEnd
		if i >= len(data) || data[i] != ':' {
			if i = skipWS(data, i); i >= len(data) || data[i] != ':' {
				return dst, 0, false
			}
		}
		i++
		if i < len(data) && data[i] <= ' ' {
			i = skipWS(data, i)
		}
		var vEnd int
		if i < len(data) && data[i] == '"' {
			vEnd, _ = scanString(data, i)
		} else {
			vEnd = skipValue(data, i)
		}
		if vEnd < 0 || vEnd > len(data) {
			return dst, 0, false
		}
		dst = append(dst, Member{Key: key, Escaped: escaped, Value: data[i:vEnd]})
		i = vEnd
		if i < len(data) && data[i] <= ' ' {
			i = skipWS(data, i)
		}
		if i < len(data) && data[i] == ',' {
			i++
			continue
		}
		if i < len(data) && data[i] == '}' {
			return dst, i + 1, true
		}
		return dst, 0, false
	}
}
