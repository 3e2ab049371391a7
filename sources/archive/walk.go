package archive

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ecscorr/ecscorr/pipeline"
)

// Skip classes of the walk (keys of Stats.Skipped, like the Skip*File
// classes): what a folder walk did not read, and why.
const (
	SkipHiddenDir     = "hidden_folder"     // dot folders (.git, ...) below a PATH
	SkipUnreadableDir = "unreadable_folder" // a folder that could not be listed
	SkipSymlinkLoop   = "symlink_loop"      // a link to a folder above it, or links that never end
	SkipBrokenSymlink = "broken_symlink"    // a link to nothing
	SkipDuplicatePath = "duplicate_path"    // a file or folder reached again by another path; read once
	SkipSpecialFile   = "special_file"      // a device, pipe or socket
)

// IsFileClass reports whether a skip class counts files or folders not
// read, as opposed to records skipped; summaries list them apart.
func IsFileClass(class string) bool {
	switch class {
	case SkipBadFile, SkipDigestFile, SkipInsightFile, SkipHiddenFile, SkipNonJSONFile,
		SkipHiddenDir, SkipUnreadableDir, SkipSymlinkLoop, SkipBrokenSymlink, SkipDuplicatePath, SkipSpecialFile:
		return true
	}
	return false
}

// Files lists the files to read under paths, in the order to read them: a
// file as itself, a folder recursively in lexical order. Symbolic links,
// given as a PATH or met in a folder, are followed; a link to a folder
// above it is a loop and is not followed, and a file or folder reached a
// second time (by a link or a repeated PATH) is listed once. Hidden
// folders below a PATH are not entered. Everything not listed is counted
// in Stats.Skipped by class; what cannot be read (an unlistable folder, a
// link to nothing, a missing PATH) is also reported to bad.
//
// skip, if set, is asked about each file with its absolute path and with
// that path's symbolic links resolved; files it accepts are left out
// uncounted (replay's own output files).
//
// Which listed files are logs is ReadFile's decision (digests, README.md).
func (r *Reader) Files(paths []string, skip func(abs string) bool, bad func(RecordError)) []string {
	w := &walker{r: r, skip: skip, bad: bad, seen: map[string]bool{}}
	for _, root := range paths {
		fi, err := os.Stat(root)
		if err != nil {
			w.linkError(root, err)
			continue
		}
		real, err := realPath(root)
		if err != nil {
			r.fileError(root, err, bad)
			continue
		}
		if fi.IsDir() {
			w.dir(root, real)
		} else {
			w.file(root, real, fi.Mode())
		}
	}
	return w.files
}

// walker is one Files call.
type walker struct {
	r    *Reader
	skip func(string) bool
	bad  func(RecordError)
	// seen holds the resolved paths of every folder entered and file
	// listed; open holds the folders being walked (a link to one of them
	// is a loop).
	seen  map[string]bool
	open  []string
	files []string
}

func realPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// dir walks the folder at path, whose resolved path is real.
func (w *walker) dir(path, real string) {
	if w.seen[real] {
		for _, o := range w.open {
			if o == real {
				w.skipped(path, SkipSymlinkLoop, false, fmt.Sprintf("link to %s, a folder it is in; not followed", real))
				return
			}
		}
		w.skipped(path, SkipDuplicatePath, false, fmt.Sprintf("folder %s already read by another path; read once", real))
		return
	}
	w.seen[real] = true
	w.open = append(w.open, real)
	defer func() { w.open = w.open[:len(w.open)-1] }()

	entries, err := w.r.readDir(path)
	if err != nil {
		// Entries listed before the error are still read.
		w.skipped(path, SkipUnreadableDir, false, fmt.Sprintf("folder not read: %v", err))
		if w.bad != nil {
			w.bad(RecordError{Pos: pipeline.Position{File: path}, Reason: "folder not read: " + err.Error()})
		}
	}
	for _, de := range entries {
		p := filepath.Join(path, de.Name())
		t := de.Type()
		switch {
		case t&fs.ModeSymlink != 0:
			fi, err := os.Stat(p)
			if err != nil {
				w.linkError(p, err)
				continue
			}
			target, err := realPath(p)
			if err != nil {
				w.linkError(p, err)
				continue
			}
			if fi.IsDir() {
				if strings.HasPrefix(de.Name(), ".") {
					w.skipped(p, SkipHiddenDir, false, "hidden folder")
					continue
				}
				w.dir(p, target)
			} else {
				w.file(p, target, fi.Mode())
			}
		case t.IsDir():
			if strings.HasPrefix(de.Name(), ".") {
				w.skipped(p, SkipHiddenDir, false, "hidden folder")
				continue
			}
			w.dir(p, filepath.Join(real, de.Name()))
		default:
			w.file(p, filepath.Join(real, de.Name()), t)
		}
	}
}

// file lists the file at path (resolved: real) unless it is not a
// regular file, was listed already, or skip takes it.
func (w *walker) file(path, real string, mode fs.FileMode) {
	if !mode.IsRegular() {
		w.skipped(path, SkipSpecialFile, true, fmt.Sprintf("not a regular file (%s); not read", mode.Type()))
		return
	}
	if w.skip != nil {
		abs, err := filepath.Abs(path)
		if (err == nil && w.skip(abs)) || w.skip(real) {
			w.r.log.Debug("archive: own output file not read", "file", path)
			return
		}
	}
	if w.seen[real] {
		w.skipped(path, SkipDuplicatePath, true, fmt.Sprintf("file %s already listed by another path; read once", real))
		return
	}
	w.seen[real] = true
	w.files = append(w.files, path)
}

// linkError handles a path that cannot be resolved: a link to nothing, a
// chain of links that never ends, or (for a PATH) a path that is missing.
func (w *walker) linkError(path string, err error) {
	switch li, lerr := os.Lstat(path); {
	case errors.Is(err, syscall.ELOOP):
		w.skipped(path, SkipSymlinkLoop, true, fmt.Sprintf("symbolic links never end: %v", err))
		if w.bad != nil {
			w.bad(RecordError{Pos: pipeline.Position{File: path}, Reason: "symbolic links never end: " + err.Error()})
		}
	case lerr == nil && li.Mode()&fs.ModeSymlink != 0:
		w.skipped(path, SkipBrokenSymlink, true, fmt.Sprintf("symbolic link to nothing: %v", err))
		if w.bad != nil {
			w.bad(RecordError{Pos: pipeline.Position{File: path}, Reason: "symbolic link to nothing: " + err.Error()})
		}
	default:
		w.r.fileError(path, err, w.bad)
	}
}

// skipped counts a path the walk does not read and logs why: as a
// warning when data may be missing, else for information (a loop, a
// second path, a hidden folder lose nothing).
func (w *walker) skipped(path, class string, isFile bool, reason string) {
	r := w.r
	r.mu.Lock()
	if isFile {
		r.stats.SkippedFiles++
	}
	r.stats.Skipped[class]++
	r.mu.Unlock()
	level := slog.LevelInfo
	switch class {
	case SkipUnreadableDir, SkipBrokenSymlink, SkipSpecialFile:
		level = slog.LevelWarn
	}
	r.log.Log(context.Background(), level, "archive: not read", "path", path, "class", class, "reason", reason)
}
