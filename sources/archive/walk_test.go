//go:build unix

package archive

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// The walk follows symbolic links (as a PATH and inside folders), stops at
// loops, reads a file reached twice once, and counts everything it does
// not read by class.
func TestFilesFollowsSymlinks(t *testing.T) {
	base := t.TempDir()
	ct := func(id string) []byte { return []byte(`{"Records":[` + ctLine(id, `"2026-01-02T03:04:05Z"`) + `]}`) }
	out := filepath.Join(base, "outside")
	writeFile(t, out, "o1.json", ct("outside-file"))
	writeFile(t, out, "sub/o2.json", ct("outside-folder"))
	root := filepath.Join(base, "root")
	writeFile(t, root, "a/1.json", ct("a1"))
	writeFile(t, root, "c/2.json", ct("c2"))
	writeFile(t, root, ".hidden/3.json", ct("hidden"))
	writeFile(t, root, "locked/4.json", ct("locked"))
	symlink(t, filepath.Join(out, "o1.json"), filepath.Join(root, "a/link-file.json"))
	symlink(t, filepath.Join(out, "sub"), filepath.Join(root, "a/link-folder"))
	symlink(t, "..", filepath.Join(root, "a/loop"))                    // to root, which contains a
	symlink(t, "1.json", filepath.Join(root, "a/same.json"))           // a second path to a/1.json
	symlink(t, "c", filepath.Join(root, "d"))                          // a second path to c
	symlink(t, "nowhere.json", filepath.Join(root, "c/dangling.json")) // to nothing
	symlink(t, "self", filepath.Join(root, "c/self"))                  // links without end
	symlink(t, filepath.Join(out, "sub"), filepath.Join(root, ".hidden-link"))
	if err := syscall.Mkfifo(filepath.Join(root, "c/fifo"), 0o644); err != nil {
		t.Fatal(err)
	}

	r := NewReader(Options{})
	// Root can list any folder: fail one on purpose.
	r.readDir = func(p string) ([]fs.DirEntry, error) {
		if filepath.Base(p) == "locked" {
			return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrPermission}
		}
		return os.ReadDir(p)
	}
	var bad []string
	files := r.Files([]string{root, filepath.Join(root, "a/link-file.json")}, nil, func(e RecordError) {
		bad = append(bad, strings.TrimPrefix(e.Pos.File, root+"/")+": "+e.Reason)
	})
	var got []string
	for _, f := range files {
		got = append(got, strings.TrimPrefix(f, root+"/"))
	}
	want := []string{"a/1.json", "a/link-file.json", "a/link-folder/o2.json", "c/2.json"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("files = %q, want %q", got, want)
	}
	wantBad := []string{
		"c/dangling.json: symbolic link to nothing: stat " + root + "/c/dangling.json: no such file or directory",
		"c/self: symbolic links never end: stat " + root + "/c/self: too many levels of symbolic links",
		"locked: folder not read: open " + root + "/locked: permission denied",
	}
	if strings.Join(bad, "\n") != strings.Join(wantBad, "\n") {
		t.Errorf("bad:\n%s\nwant:\n%s", strings.Join(bad, "\n"), strings.Join(wantBad, "\n"))
	}
	st := r.Stats()
	wantSkip := map[string]int64{
		SkipHiddenDir:     2, // .hidden, .hidden-link
		SkipSymlinkLoop:   2, // a/loop, c/self
		SkipDuplicatePath: 3, // a/same.json, d, the second PATH
		SkipBrokenSymlink: 1,
		SkipSpecialFile:   1,
		SkipUnreadableDir: 1,
	}
	if fmt.Sprint(st.Skipped) != fmt.Sprint(wantSkip) {
		t.Errorf("skipped = %v, want %v", st.Skipped, wantSkip)
	}
	// Files: a/same.json, the second PATH, dangling, self, fifo.
	if st.SkippedFiles != 5 {
		t.Errorf("skipped files = %d, want 5", st.SkippedFiles)
	}
	for c := range wantSkip {
		if !IsFileClass(c) {
			t.Errorf("IsFileClass(%q) = false", c)
		}
	}
	if IsFileClass(SkipBadJSON) || IsFileClass(SkipTimeOutOfRange) {
		t.Error("record classes reported as file classes")
	}
}

// A symbolic link given as PATH, to a folder or to a file, is read like
// the folder or file itself (it once read 0 files and exited 0).
func TestReadSymlinkPath(t *testing.T) {
	base := t.TempDir()
	writeFile(t, base, "real/x/1.jsonl", []byte(ctLine("e1", `"2026-01-02T03:04:05Z"`)+"\n"+ctLine("e2", `"2026-01-02T03:04:06Z"`)+"\n"))
	writeFile(t, base, "real/2.json", []byte(ctLine("e3", `"2026-01-02T03:04:07Z"`)))
	symlink(t, filepath.Join(base, "real"), filepath.Join(base, "to-folder"))
	symlink(t, filepath.Join(base, "real/2.json"), filepath.Join(base, "to-file.json"))
	for _, tc := range []struct{ path, want string }{
		{"to-folder", "e3,e1,e2"},
		{"to-file.json", "e3"},
	} {
		res := readPaths(t, Options{}, filepath.Join(base, tc.path))
		if got := ids(res.events); got != tc.want || len(res.errs) != 0 || len(res.stats.Skipped) != 0 {
			t.Errorf("%s: events %q errors %v skipped %v, want %q", tc.path, got, res.errs, res.stats.Skipped, tc.want)
		}
	}
}

// A missing PATH is a bad file, as before.
func TestFilesMissingPath(t *testing.T) {
	r := NewReader(Options{})
	var bad []RecordError
	files := r.Files([]string{"no/such/path"}, nil, func(e RecordError) { bad = append(bad, e) })
	if len(files) != 0 || len(bad) != 1 || !strings.Contains(bad[0].Reason, "no such file") || r.Stats().Skipped[SkipBadFile] != 1 {
		t.Fatalf("files %v bad %v stats %+v", files, bad, r.Stats())
	}
}
