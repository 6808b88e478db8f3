package cli

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestSourceErrorsExit2: a build that cannot be shipped as it is (no source directory, a file
// instead of one, a fifo, socket or device in it) is fixed in ferry.yaml or the build: exit 2,
// with a hint, and no host touched.
func TestSourceErrorsExit2(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, build string)
		want  string
	}{
		{"missing", func(t *testing.T, build string) { os.RemoveAll(build) }, "no such file or directory"},
		{"file", func(t *testing.T, build string) {
			os.RemoveAll(build)
			os.WriteFile(build, []byte("hi"), 0o644)
		}, "is not a directory"},
		{"fifo", func(t *testing.T, build string) {
			if err := syscall.Mkfifo(filepath.Join(build, "pipe"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, `"pipe" is a p---------`},
		{"socket", func(t *testing.T, build string) {
			l, err := net.Listen("unix", filepath.Join(build, "s"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
		}, `"s" is a S---------`},
		{"device", func(t *testing.T, build string) {
			if err := syscall.Mknod(filepath.Join(build, "null"), syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
				t.Skipf("cannot make a device node: %v", err)
			}
		}, `"null" is a Dc`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			build := filepath.Join(dir, "build")
			if err := os.Mkdir(build, 0o755); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(build, "index.html"), []byte("hi"), 0o644)
			tc.setup(t, build)
			cfg := filepath.Join(dir, "ferry.yaml")
			os.WriteFile(cfg, []byte("root: "+filepath.Join(dir, "srv")+"\nsource: ./build\n"), 0o644)
			var stdout, stderr bytes.Buffer
			if code := Main([]string{"-c", cfg, "deploy"}, &stdout, &stderr); code != exitUsage {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, exitUsage, &stderr)
			}
			if !strings.Contains(stderr.String(), tc.want) || !strings.Contains(stderr.String(), "ferry: hint: ") {
				t.Errorf("stderr does not say %q with a hint:\n%s", tc.want, &stderr)
			}
			if _, err := os.Lstat(filepath.Join(dir, "srv")); err == nil {
				t.Errorf("the root was created")
			}
		})
	}
}
