package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// fileDriver stores each object as a regular file under root, at the path
// named by its key. All access goes through an os.Root, which refuses to
// leave the directory whatever the key or the symbolic links inside it.
//
// Writes go to a temporary file in the target's directory, named
// ".tmp\" + random: the backslash makes it an invalid key, so List never
// shows it, even when a crash leaves one behind. The temporary
// file is fsynced, then renamed (Put) or hard-linked (PutIfAbsent, which
// fails atomically if the name exists) to the key, and the directory is
// fsynced.
//
// Each path segment is limited by the filesystem, usually to 255 bytes.
// Keys "a" and "a/b" cannot both exist, since "a" would have to be a file
// and a directory; writing the second fails with an error (not ErrExists).
type fileDriver struct {
	root *os.Root
}

const tmpMark = ".tmp\\"

func openFile(dir string) (driver, string, error) {
	if dir == "" {
		return nil, "", errors.New("store: open: empty path")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, "", fmt.Errorf("store: open %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, "", fmt.Errorf("store: open %s: %w", abs, err)
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, "", fmt.Errorf("store: open %s: %w", abs, err)
	}
	return &fileDriver{root: root}, "file://" + abs, nil
}

func (d *fileDriver) close() error { return d.root.Close() }

func (d *fileDriver) atomicPutIfAbsent(context.Context) (bool, error) { return true, nil }

// notFound reports whether err means that there is no file at a key:
// missing, or a path component is not a directory.
func notFound(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

func (d *fileDriver) put(ctx context.Context, key string, r io.Reader, size int64, o putOpts) (err error) {
	dir := path.Dir(key)
	tmpName := path.Join(dir, tmpMark+rand.Text())
	var f *os.File
	// A concurrent delete may remove the (empty) directory between MkdirAll
	// and OpenFile; try again a few times.
	for attempt := 0; ; attempt++ {
		if dir != "." {
			if err := d.root.MkdirAll(dir, 0o755); err != nil {
				return err
			}
		}
		f, err = d.root.OpenFile(tmpName, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			break
		}
		if attempt == 5 || !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	defer func() {
		if f != nil {
			f.Close()
		}
		_ = d.root.Remove(tmpName) // gone already after a rename
	}()
	n, err := io.Copy(f, &ctxReader{ctx: ctx, r: r})
	if err != nil {
		return err
	}
	if size >= 0 && n != size {
		return fmt.Errorf("wrote %d bytes, expected %d", n, size)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	err = f.Close()
	f = nil
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if o.ifAbsent {
		err = d.root.Link(tmpName, key)
		if errors.Is(err, fs.ErrExist) && !d.isDir(key) {
			return ErrExists
		}
	} else {
		err = d.root.Rename(tmpName, key)
	}
	if err != nil {
		if d.isDir(key) {
			return fmt.Errorf("%q is a directory holding other keys; the file driver cannot store both", key)
		}
		return err
	}
	d.syncDir(dir)
	return nil
}

func (d *fileDriver) isDir(key string) bool {
	fi, err := d.root.Lstat(key)
	return err == nil && fi.IsDir()
}

func (d *fileDriver) syncDir(dir string) {
	if f, err := d.root.Open(dir); err == nil {
		_ = f.Sync()
		f.Close()
	}
}

func (d *fileDriver) get(_ context.Context, key string, _ bool) (io.ReadCloser, int64, error) {
	f, err := d.root.Open(key)
	if notFound(err) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, ErrNotFound
	}
	return f, fi.Size(), nil
}

func (d *fileDriver) stat(_ context.Context, key string) (Attrs, error) {
	fi, err := d.root.Stat(key)
	if notFound(err) {
		return Attrs{}, ErrNotFound
	}
	if err != nil {
		return Attrs{}, err
	}
	if !fi.Mode().IsRegular() {
		return Attrs{}, ErrNotFound
	}
	a := Attrs{Size: fi.Size(), ModTime: fi.ModTime()}
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	a.ETag = fmt.Sprintf("%x-%x-%x", ino, fi.ModTime().UnixNano(), fi.Size())
	return a, nil
}

func (d *fileDriver) delete(_ context.Context, key string) error {
	fi, err := d.root.Lstat(key)
	if notFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return nil // a prefix of other keys, not an object
	}
	if err := d.root.Remove(key); err != nil && !notFound(err) {
		return err
	}
	// Remove the directories the key leaves empty, so that their names can
	// become keys again; Remove fails on the first one that is not empty.
	for dir := path.Dir(key); dir != "."; dir = path.Dir(dir) {
		if d.root.Remove(dir) != nil {
			break
		}
	}
	return nil
}

func (d *fileDriver) list(ctx context.Context, prefix string) ([]string, error) {
	start := "."
	if i := strings.LastIndexByte(prefix, '/'); i > 0 && ValidKey(prefix[:i]) {
		start = prefix[:i]
	}
	keys := []string{}
	err := fs.WalkDir(d.root.FS(), start, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if notFound(err) {
				// The start directory does not exist, or an entry went away
				// while we walked: nothing to list there.
				if p == start {
					return fs.SkipAll
				}
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		if e.IsDir() {
			if !ValidKey(p) {
				return fs.SkipDir
			}
			if pd := p + "/"; !strings.HasPrefix(pd, prefix) && !strings.HasPrefix(prefix, pd) {
				return fs.SkipDir
			}
			return nil
		}
		if e.Type().IsRegular() && strings.HasPrefix(p, prefix) && ValidKey(p) {
			keys = append(keys, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return keys, nil
}
