package kafkasrc

import "testing"

func TestRecordPos(t *testing.T) {
	pos := RecordPos("ecscorr-events", 11, 123456)
	if pos != "kafka://ecscorr-events/11/123456" {
		t.Fatalf("RecordPos = %q", pos)
	}
	topic, p, off, stream, ok := ParseRecordPos(pos)
	if !ok || topic != "ecscorr-events" || p != 11 || off != 123456 || stream != "ecscorr-events/11" {
		t.Fatalf("ParseRecordPos(%q) = %q %d %d %q %v", pos, topic, p, off, stream, ok)
	}
	// Topic names may hold dots and dashes, never a slash; these are not positions.
	for _, bad := range []string{"s3://b/k", "kafka://t/x/1", "kafka://t/1/x", "kafka://t1", "/tmp/f.json.gz"} {
		if _, _, _, _, ok := ParseRecordPos(bad); ok {
			t.Errorf("ParseRecordPos(%q) ok", bad)
		}
	}
}
