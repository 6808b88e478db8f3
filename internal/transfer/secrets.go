package transfer

import (
	"path"
	"slices"
	"strings"
)

// Secrets returns the paths of the files in m whose names look like secrets: ".env" and ".env.*"
// (not the templates ".env.example", ".env.sample", ".env.dist", ".env.template"), "*.pem",
// "*.key", and SSH private keys ("id_rsa", "id_ed25519", "id_ecdsa", "id_dsa", with any suffix
// but ".pub"). Names are compared without regard to case. A file at or below one of the shared
// paths is left out: the release links it to the host's shared copy instead of shipping it.
// The paths come in manifest order, for the engine to warn about before they are uploaded.
func Secrets(m *Manifest, shared []string) []string {
	var out []string
	for _, e := range m.Entries {
		if e.Type != TypeFile || !looksSecret(path.Base(e.Path)) {
			continue
		}
		if slices.ContainsFunc(shared, func(p string) bool { return under(e.Path, p) }) {
			continue
		}
		out = append(out, e.Path)
	}
	return out
}

var envTemplates = []string{".env.example", ".env.sample", ".env.dist", ".env.template"}

func looksSecret(name string) bool {
	name = strings.ToLower(name)
	switch {
	case name == ".env":
		return true
	case strings.HasPrefix(name, ".env."):
		return !slices.Contains(envTemplates, name)
	case strings.HasSuffix(name, ".pem"), strings.HasSuffix(name, ".key"):
		return true
	case strings.HasPrefix(name, "id_"):
		if strings.HasSuffix(name, ".pub") {
			return false
		}
		for _, kind := range []string{"id_rsa", "id_ed25519", "id_ecdsa", "id_dsa"} {
			if strings.HasPrefix(name, kind) {
				return true
			}
		}
	}
	return false
}
