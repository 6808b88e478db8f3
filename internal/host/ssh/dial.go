package ssh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kevinburke/ssh_config"
	"golang.org/x/crypto/ssh"
)

// Options locate the user's SSH files. Empty fields take the defaults under $HOME/.ssh.
type Options struct {
	ConfigFile     string
	KnownHostsFile string
	IdentityFiles  []string // tried when ssh_config names none
	Timeout        time.Duration
}

// target is where and as whom to connect, after ~/.ssh/config.
type target struct {
	alias, user, host, port string
	identities              []string
	jump                    string
}

func (o Options) withDefaults() Options {
	home, _ := os.UserHomeDir()
	if o.ConfigFile == "" {
		o.ConfigFile = filepath.Join(home, ".ssh", "config")
	}
	if o.KnownHostsFile == "" {
		o.KnownHostsFile = filepath.Join(home, ".ssh", "known_hosts")
	}
	if len(o.IdentityFiles) == 0 {
		for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			o.IdentityFiles = append(o.IdentityFiles, filepath.Join(home, ".ssh", n))
		}
	}
	if o.Timeout == 0 {
		o.Timeout = 15 * time.Second
	}
	return o
}

// resolve reads "user@host:port" or an alias through ~/.ssh/config.
func resolve(spec string, o Options) (target, error) {
	t := target{alias: spec}
	if at := strings.LastIndex(spec, "@"); at >= 0 {
		t.user, spec = spec[:at], spec[at+1:]
	}
	if h, p, err := net.SplitHostPort(spec); err == nil {
		spec, t.port = h, p
	}
	t.alias, t.host = spec, spec
	var cfg *ssh_config.Config
	if f, err := os.Open(o.ConfigFile); err == nil {
		cfg, err = ssh_config.Decode(f)
		f.Close()
		if err != nil {
			return t, fmt.Errorf("%s: %w", o.ConfigFile, err)
		}
	}
	get := func(key string) string {
		if cfg == nil {
			return ""
		}
		v, _ := cfg.Get(t.alias, key)
		return v
	}
	if v := get("HostName"); v != "" {
		t.host = strings.ReplaceAll(v, "%h", t.alias)
	}
	if t.user == "" {
		t.user = get("User")
	}
	if t.user == "" {
		t.user = os.Getenv("USER")
	}
	if t.user == "" {
		t.user = "root"
	}
	if t.port == "" {
		t.port = get("Port")
	}
	if t.port == "" {
		t.port = "22"
	}
	if cfg != nil {
		ids, _ := cfg.GetAll(t.alias, "IdentityFile")
		home, _ := os.UserHomeDir()
		for _, id := range ids {
			if strings.HasPrefix(id, "~/") {
				id = filepath.Join(home, id[2:])
			}
			t.identities = append(t.identities, id)
		}
	}
	if len(t.identities) == 0 {
		t.identities = o.IdentityFiles
	}
	if j := get("ProxyJump"); j != "" && !strings.EqualFold(j, "none") {
		t.jump = j
	}
	return t, nil
}

// Dial connects to spec ("user@host:port" or an alias of ~/.ssh/config), checking the host key
// strictly against known_hosts. Channels (the shell for scripts, SFTP for the swap, sessions for
// uploads and hooks) are opened on the connection when first needed, or ahead with Warm.
func Dial(ctx context.Context, name, spec string, o Options) (*SSH, error) {
	o = o.withDefaults()
	h := &SSH{name: name}
	client, err := h.dial(ctx, spec, o, 0)
	if err != nil {
		h.Close()
		return nil, err
	}
	h.client = client
	return h, nil
}

func (h *SSH) dial(ctx context.Context, spec string, o Options, depth int) (*ssh.Client, error) {
	t, err := resolve(spec, o)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(t.host, t.port)
	var conn net.Conn
	if t.jump != "" && depth < 5 {
		hops := strings.Split(t.jump, ",")
		var via *ssh.Client
		for i, hop := range hops {
			var c *ssh.Client
			if i == 0 {
				c, err = h.dial(ctx, hop, o, depth+1)
			} else {
				c, err = clientVia(ctx, via, hop, o)
			}
			if err != nil {
				return nil, fmt.Errorf("ProxyJump %s: %w", hop, err)
			}
			h.jumps = append(h.jumps, c)
			via = c
		}
		conn, err = via.DialContext(ctx, "tcp", addr)
	} else {
		d := net.Dialer{Timeout: o.Timeout}
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	if depth == 0 {
		conn = &countingConn{Conn: conn, sent: &h.sent, received: &h.received}
	}
	return handshake(conn, t, addr, o)
}

// clientVia connects to spec through an established connection (a ProxyJump hop).
func clientVia(ctx context.Context, via *ssh.Client, spec string, o Options) (*ssh.Client, error) {
	t, err := resolve(spec, o)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(t.host, t.port)
	conn, err := via.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	return handshake(conn, t, addr, o)
}

// handshake runs the SSH handshake for t on conn, closing conn if it fails.
func handshake(conn net.Conn, t target, addr string, o Options) (*ssh.Client, error) {
	cfg, err := clientConfig(t, addr, o)
	if err != nil {
		conn.Close()
		return nil, err
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		var hke *HostKeyError
		if errors.As(err, &hke) {
			return nil, hke
		}
		return nil, fmt.Errorf("ssh %s@%s: %w", t.user, addr, err)
	}
	return ssh.NewClient(c, chans, reqs), nil
}
