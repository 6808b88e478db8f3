package check

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDestructiveSQL(t *testing.T) {
	for _, tc := range []struct {
		name, sql string
		want      []string
	}{
		// What is destructive.
		{"drop column", "ALTER TABLE users DROP COLUMN email;", []string{"ALTER TABLE users DROP COLUMN email;"}},
		{"lower case", "alter table users drop   column email", []string{"alter table users drop column email"}},
		{"drop table", "DROP TABLE sessions;", []string{"DROP TABLE sessions;"}},
		{"rename column", "ALTER TABLE users RENAME COLUMN name TO full_name;", []string{"ALTER TABLE users RENAME COLUMN name TO full_name;"}},
		{"rename table", "ALTER TABLE users RENAME TO people;", []string{"ALTER TABLE users RENAME TO people;"}},
		{"type", "ALTER TABLE users ALTER COLUMN age TYPE bigint;", []string{"ALTER TABLE users ALTER COLUMN age TYPE bigint;"}},
		{"set data type", "ALTER TABLE users ALTER COLUMN age SET DATA TYPE bigint;", []string{"ALTER TABLE users ALTER COLUMN age SET DATA TYPE bigint;"}},
		{"quoted names", `ALTER TABLE "users" ALTER COLUMN "age" TYPE bigint;`, []string{`ALTER TABLE "users" ALTER COLUMN "age" TYPE bigint;`}},
		{"over lines", "ALTER TABLE users\n  ADD COLUMN nick text,\n  DROP COLUMN email;\n", []string{"ALTER TABLE users ADD COLUMN nick text, DROP COLUMN email;"}},
		{"keyword split over lines", "DROP\nTABLE sessions;", []string{"DROP TABLE sessions;"}},
		{"comment inside", "DROP /* for good */ TABLE sessions;", []string{"DROP TABLE sessions;"}},
		{"comment after", "DROP TABLE sessions; -- gone", []string{"DROP TABLE sessions;"}},
		{"after a comment line", "-- remove sessions\nDROP TABLE sessions;", []string{"DROP TABLE sessions;"}},
		{"two on a line", "DROP TABLE a; DROP TABLE b;", []string{"DROP TABLE a;", "DROP TABLE b;"}},
		{"after a string with a semicolon", "INSERT INTO log VALUES ('a;b'); DROP TABLE log;", []string{"DROP TABLE log;"}},
		{"after an escaped quote", `INSERT INTO notes VALUES ('it\'s -- fine'); DROP TABLE notes;`, []string{"DROP TABLE notes;"}},
		{"mysqldump", "/*!40000 DROP TABLE IF EXISTS `t` */;", []string{"DROP TABLE IF EXISTS `t` ;"}},
		{"postgres json path is no comment", "SELECT data #> '{a}' FROM t; DROP TABLE t;", []string{"DROP TABLE t;"}},
		{"long statement", "ALTER TABLE users ADD COLUMN a int, ADD COLUMN b int, ADD COLUMN c int, DROP COLUMN email, ADD COLUMN d int, ADD COLUMN e int, ADD COLUMN f int, ADD COLUMN g int, ADD COLUMN h int;",
			[]string{"… ADD COLUMN b int, ADD COLUMN c int, DROP COLUMN email, ADD COLUMN d int, ADD COLUMN e int, ADD COLUMN f int, ADD …"}},

		// Read as each dialect would: hidden in one reading, found in the other.
		{"postgres xor is no comment", "UPDATE t SET f = f # 4; DROP TABLE users;", []string{"DROP TABLE users;"}},
		{"standard backslash is no escape", `INSERT INTO t VALUES ('C:\'); DROP TABLE users; -- '`, []string{"DROP TABLE users;"}},
		{"after a dollar quote", "SELECT $$it's$$; DROP TABLE users;", []string{"DROP TABLE users;"}},
		{"after a tagged dollar quote", "SELECT $q$it's; fine$q$; DROP TABLE users;", []string{"DROP TABLE users;"}},

		// What is not.
		{"add column", "ALTER TABLE users ADD COLUMN email text;", nil},
		{"word in a name", "CREATE TABLE drop_log (id int);", nil},
		{"word in a column", "UPDATE users SET dropped = true;", nil},
		{"line comment", "-- we never DROP TABLE anything here\nSELECT 1;", nil},
		{"line comment after code", "UPDATE t SET c = 1 -- not DROP COLUMN c\nWHERE id = 1;", nil},
		{"block comment", "/* DROP TABLE users */\nSELECT 1;", nil},
		{"block comment over lines", "/*\n * DROP\n * TABLE users\n */", nil},
		{"nested block comment", "/* outer /* inner */ DROP TABLE users */", nil},
		{"unterminated block comment", "/* DROP TABLE users", nil},
		{"mysql comment", "# DROP TABLE users\nSELECT 1;", nil},
		{"mysql comment after code", "SELECT 1; # then DROP TABLE users", nil},
		{"string", "INSERT INTO help VALUES ('run DROP TABLE to start over');", nil},
		{"string with a doubled quote", "INSERT INTO help VALUES ('it''s DROP COLUMN time');", nil},
		{"double-quoted string", `INSERT INTO help VALUES ("DROP TABLE users");`, nil},
		{"unterminated string", "SELECT 'DROP TABLE users", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, DestructiveSQL(tc.sql)); diff != "" {
				t.Errorf("DestructiveSQL(%q) (-want +got):\n%s", tc.sql, diff)
			}
		})
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

// A migration is read as its file says: a Django, Rails or Laravel file has # comments; a .sql
// file with MySQL's marks is MySQL's; PostgreSQL's E'…' strings have backslash escapes, and a
// $ inside a name starts no dollar quote.
func TestDestructiveSQLIn(t *testing.T) {
	for _, tc := range []struct {
		name, path, sql string
		want            []string
	}{
		{"django comment", "shop/migrations/0007_order_note.py", "# the rename to \"memo\" ships later\nfield = models.TextField()\n", nil},
		{"django drop", "shop/migrations/0008.py", "migrations.RunSQL(\"DROP TABLE legacy;\")\n", []string{`migrations.RunSQL(" DROP TABLE legacy;`}},
		{"mysql comment in mysql", "db/1.sql", "ALTER TABLE `t` ADD COLUMN x int; # was going to DROP COLUMN name\n", nil},
		{"mysqldump data", "db/dump.sql", "INSERT INTO `t` VALUES ('Can\\'t rename to x;');\n", nil},
		{"postgres E string", "db/2.sql", "INSERT INTO t VALUES (E'it\\'s; drop table x');\n", nil},
		{"dollar in a name", "db/3.sql", "SELECT x$b$ # 1 FROM t; DROP TABLE u; -- $b$\n", []string{"DROP TABLE u;"}},
		{"plain sql, both readings", "db/4.sql", "UPDATE t SET f = f # 4; DROP TABLE users;", []string{"DROP TABLE users;"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, DestructiveSQLIn(tc.path, tc.sql)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
