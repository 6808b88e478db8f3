package transfer

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSecrets(t *testing.T) {
	dir := build(t,
		".env", ".env.production", ".env.example", ".env.sample", "config/.ENV.local",
		"certs/site.pem", "storage/oauth-private.key", "keys/id_rsa", "keys/id_rsa.pub", "keys/id_ed25519_deploy",
		"keys/id_ecdsa", "keys/id_card.png", "src/environment.js", "src/.envrc", "public/app.key.js", "keyring/",
	)
	m, err := Scan(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		shared []string
		want   []string
	}{
		{nil, []string{
			".env", ".env.production", "certs/site.pem", "config/.ENV.local",
			"keys/id_ecdsa", "keys/id_ed25519_deploy", "keys/id_rsa", "storage/oauth-private.key",
		}},
		// Shared paths are linked to the host's copy, not shipped: a file or everything below a directory.
		{[]string{".env", "storage", "keys/id"}, []string{
			".env.production", "certs/site.pem", "config/.ENV.local", "keys/id_ecdsa", "keys/id_ed25519_deploy", "keys/id_rsa",
		}},
	} {
		if diff := cmp.Diff(tc.want, Secrets(m, tc.shared)); diff != "" {
			t.Errorf("shared %q, secrets (-want +got):\n%s", tc.shared, diff)
		}
	}
}
