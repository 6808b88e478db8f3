package deploy

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-deploy/ferry/internal/check"
	"github.com/ferry-deploy/ferry/internal/invariants"
)

func codes(fs []check.Finding) []string {
	var out []string
	for _, f := range fs {
		if f.Severity != check.Info {
			out = append(out, string(f.Severity)+" "+f.Code)
		}
	}
	slices.Sort(out)
	return out
}

func TestCheckFindsThePitfalls(t *testing.T) {
	dir := t.TempDir()
	nginx := filepath.Join(dir, "nginx-T.txt")
	s := newSite(t, "shared:\n  files: [.env]\n  dirs: [public/uploads]\nhooks:\n  before_activate:\n    - run: echo compiled > public/cache.txt\ncheck:\n  nginx: cat "+nginx+"\n")
	hostShared(t, s.root, ".env")
	s.mustDeploy()
	findings, err := Check(context.Background(), s.cfg, s.opts, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := codes(findings); len(got) != 0 {
		t.Fatalf("a clean root has findings: %v", findings)
	}

	// The app writes avatars into the release; someone edits a shipped file; .env changes with
	// no restart configured; the build gains a destructive migration and ships the shared .env.
	os.MkdirAll(filepath.Join(s.root, "current/public/avatars"), 0o755)
	os.WriteFile(filepath.Join(s.root, "current/public/avatars/1.png"), []byte("png"), 0o644)
	os.WriteFile(filepath.Join(s.root, "current/public/app.js"), []byte("console.log('hotfix')"), 0o644)
	later := time.Now().Add(time.Minute) // written after the deploy, as user data is
	os.Chtimes(filepath.Join(s.root, "current/public/avatars/1.png"), later, later)
	os.Chtimes(filepath.Join(s.root, "current/public/app.js"), later, later)
	os.WriteFile(filepath.Join(s.root, "shared/.env"), []byte("DB=new\n"), 0o600)
	s.write("database/migrations/002_drop_email.sql", "ALTER TABLE users DROP COLUMN email;\n")
	s.write(".env", "DB=build\n")
	os.WriteFile(nginx, []byte(`http {
  open_file_cache max=100;
  server {
    server_name example.com;
    root `+s.root+`/releases/20260101-000000/public;
    location ~ \.php$ { fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name; }
  }
}`), 0o644)
	os.Symlink("releases/x", filepath.Join(s.root, "current.abc123def456"))
	os.Symlink("releases/x", filepath.Join(s.root, "current.mine")) // a user's, not reported
	findings, err = Check(context.Background(), s.cfg, s.opts, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"error nginx-root-not-current",
		"warning destructive-migration",
		"warning env-changed-no-restart",
		"warning nginx-document-root",
		"warning nginx-open-file-cache",
		"warning release-modified",
		"warning shared-in-build",
		"warning stale-temp-link",
		"warning state-in-release",
	}
	for _, f := range findings {
		if f.Code == "state-in-release" && (!strings.Contains(f.What, "public/avatars/1.png") || !strings.Contains(f.Fix, `"public/avatars"`)) {
			t.Errorf("state-in-release does not name the path and the shared entry: %v", f)
		}
		if f.Code == "destructive-migration" && !strings.Contains(f.What, "DROP COLUMN email") {
			t.Errorf("destructive-migration: %v", f)
		}
		// What a user reads: no finding names the file the before_activate hook made.
		if strings.Contains(f.String(), "cache.txt") {
			t.Errorf("a file made by a before_activate hook counted as user data: %v", f)
		}
	}
	if diff := cmp.Diff(want, codes(findings)); diff != "" {
		t.Fatalf("findings (-want +got):\n%s\n%v", diff, findings)
	}

	// The deploy itself warns about the migration, before anything is touched; and the file
	// edited in the live release is sent from the build, not hard-linked with the edit.
	res, err := s.deploy()
	if err != nil {
		t.Fatal(err)
	}
	if !s.rep.warned("destructive migration database/migrations/002_drop_email.sql") {
		t.Errorf("deploy did not warn about the migration: %v", s.rep.warnings)
	}
	if !s.rep.warned("1 file of the live release") {
		t.Errorf("deploy did not warn about the edited file: %v", s.rep.warnings)
	}
	if got := s.read("current/public/app.js"); got != "console.log(1)" {
		t.Fatalf("the new release has app.js = %q, want the build's", got)
	}
	if err := invariants.MatchManifest(s.root, res.Release, s.cfg.SharedPaths()); err != nil {
		t.Fatal(err)
	}
}
