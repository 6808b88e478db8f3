package check

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDestructiveSQL(t *testing.T) {
	for _, tc := range []struct {
		sql  string
		want bool
	}{
		{"ALTER TABLE users DROP COLUMN email;", true},
		{"alter table users drop   column email", true},
		{"DROP TABLE sessions;", true},
		{"ALTER TABLE users RENAME COLUMN name TO full_name;", true},
		{"ALTER TABLE users ALTER COLUMN age TYPE bigint;", true},
		{"ALTER TABLE users ALTER COLUMN age SET DATA TYPE bigint;", true},
		{"ALTER TABLE users ADD COLUMN email text;", false},
		{"CREATE TABLE drop_log (id int);", false},
		{"-- we never DROP anything here", false},
		{"UPDATE users SET dropped = true;", false},
	} {
		if got := len(DestructiveSQL(tc.sql)) > 0; got != tc.want {
			t.Errorf("DestructiveSQL(%q) = %v, want %v", tc.sql, got, tc.want)
		}
	}
}

func TestParseNginx(t *testing.T) {
	conf := `# configuration file /etc/nginx/nginx.conf:
http {
    open_file_cache max=1000 inactive=20s;
    server {
        listen 80;
        server_name static.example.com;
        root /srv/www/example.com/current/public;
        location /old/ { alias /srv/www/example.com/releases/20260101-000000/public/; }
    }
    server {
        server_name php.example.com;
        open_file_cache off;
        root /srv/www/php/current/public;
        location ~ \.php$ {
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        }
    }
}
`
	got := ParseNginx(conf)
	want := []NginxServer{
		{Names: "static.example.com", Roots: []string{"/srv/www/example.com/current/public", "/srv/www/example.com/releases/20260101-000000/public/"}, OpenFileCache: true},
		{Names: "php.example.com", Roots: []string{"/srv/www/php/current/public"}, DocumentRootPH: true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		p           string
		under, curr bool
	}{
		{"/srv/www/example.com/current/public", true, true},
		{"/srv/www/example.com/releases/1/public", true, false},
		{"/srv/www/example.com.old/current", false, false},
		{"/srv/www/example.com/current", true, true},
	} {
		u, c := UnderRoot(tc.p, "/srv/www/example.com")
		if u != tc.under || c != tc.curr {
			t.Errorf("UnderRoot(%q) = %v %v", tc.p, u, c)
		}
	}
}
