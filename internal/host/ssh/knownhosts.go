package ssh

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"

	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/ferry-deploy/ferry/internal/host"
)

// HostKeyError is an unknown or changed host key; Hint tells how to trust it.
type HostKeyError struct {
	Host        string
	Fingerprint string
	Changed     bool
	Hint        string
}

func (e *HostKeyError) Error() string {
	if e.Changed {
		return fmt.Sprintf("host key of %s has CHANGED (now %s): refusing to connect; someone may be intercepting the connection", e.Host, e.Fingerprint)
	}
	return fmt.Sprintf("host key of %s is not known (%s): refusing to connect", e.Host, e.Fingerprint)
}

// clientConfig builds the authentication (ssh-agent, then identity files) and the strict host
// key check for t, under its HostKeyAlias if it has one.
func clientConfig(t target, addr string, o Options) (*ssh.ClientConfig, error) {
	var signers []ssh.Signer
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		if ac, err := net.Dial("unix", sock); err == nil {
			if s, err := agent.NewClient(ac).Signers(); err == nil {
				signers = append(signers, s...)
			}
		}
	}
	var keyErrs []string
	for _, id := range t.identities {
		data, err := os.ReadFile(id)
		if err != nil {
			continue
		}
		s, err := ssh.ParsePrivateKey(data)
		if err != nil {
			keyErrs = append(keyErrs, fmt.Sprintf("%s: %v (add it to ssh-agent)", id, err))
			continue
		}
		signers = append(signers, s)
	}
	if len(signers) == 0 {
		msg := "no SSH key: start ssh-agent and ssh-add your key, or set IdentityFile in ~/.ssh/config"
		if len(keyErrs) > 0 {
			msg += "; " + strings.Join(keyErrs, "; ")
		}
		return nil, errors.New(msg)
	}
	db, err := knownhosts.NewDB(o.KnownHostsFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", o.KnownHostsFile, err)
	}
	// known_hosts names the host by host:port (bare host for port 22), or by its HostKeyAlias
	// alone, as OpenSSH does.
	keyHost, shown := addr, addr
	if t.keyAlias != "" {
		keyHost, shown = net.JoinHostPort(t.keyAlias, "22"), t.keyAlias
	}
	check := func(_ string, remote net.Addr, key ssh.PublicKey) error {
		unknown := db == nil // no known_hosts file: every host is unknown
		var err error
		if !unknown {
			if err = db.HostKeyCallback()(keyHost, remote, key); err == nil {
				return nil
			}
			unknown = knownhosts.IsHostUnknown(err)
		}
		fp := key.Type() + " " + ssh.FingerprintSHA256(key)
		trust := trustCommand(t, addr, keyHost, key, o.KnownHostsFile)
		switch {
		case knownhosts.IsHostKeyChanged(err):
			return &HostKeyError{Host: shown, Fingerprint: fp, Changed: true,
				Hint: fmt.Sprintf("if the server was really reinstalled, remove its old key (ssh-keygen -R %s -f %s) and trust the new one after checking its fingerprint: %s", knownhosts.Normalize(keyHost), o.KnownHostsFile, trust)}
		case unknown:
			return &HostKeyError{Host: shown, Fingerprint: fp,
				Hint: fmt.Sprintf("check the fingerprint with the server's admin, then trust it: %s", trust)}
		}
		return err
	}
	cfg := &ssh.ClientConfig{
		User:            t.user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signers...)},
		HostKeyCallback: check,
		Timeout:         o.Timeout,
	}
	if db != nil {
		cfg.HostKeyAlgorithms = db.HostKeyAlgorithms(keyHost)
	}
	return cfg, nil
}

// trustCommand is the command that adds key to known_hosts under keyHost: ssh-keyscan, which
// files the key under the address it scans, for a host reached directly and known by its address;
// else the line itself, since ssh-keyscan cannot reach a host behind a ProxyJump or ProxyCommand
// nor file a key under a HostKeyAlias.
func trustCommand(t target, addr, keyHost string, key ssh.PublicKey, knownHostsFile string) string {
	if t.proxied || t.keyAlias != "" {
		return "echo " + host.Quote(knownhosts.Line([]string{keyHost}, key)) + " >> " + knownHostsFile
	}
	h, port, _ := net.SplitHostPort(addr)
	scan := "ssh-keyscan "
	if port != "22" {
		scan += "-p " + port + " "
	}
	return scan + h + " >> " + knownHostsFile
}
