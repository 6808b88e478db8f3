package ssh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

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
	jump                    string // ProxyJump hops, "" for none
	command                 string // ProxyCommand as written (tokens unexpanded), "" for none
	keyAlias                string // HostKeyAlias: the host's name in known_hosts, "" for host:port
	network                 string // "tcp", or "tcp4" or "tcp6" under AddressFamily
	bind                    string // BindAddress, "" for any
	proxied                 bool   // reached through a ProxyJump hop or a ProxyCommand, not from here
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
//
// Honoured: HostName, User, Port, IdentityFile, ProxyJump, ProxyCommand, HostKeyAlias,
// AddressFamily and BindAddress. Keys that would make OpenSSH reach the host another way and that
// ferry cannot follow are refused by name, never ignored:
//   - ProxyJump and ProxyCommand both set: OpenSSH takes whichever comes first in the files, an
//     order the ssh_config library does not give.
//   - ProxyUseFdpass yes: the ProxyCommand passes a socket back instead of relaying on its
//     stdin and stdout.
//   - CanonicalizeHostname yes or always, when it applies to the name: OpenSSH rewrites a short
//     name with CanonicalDomains, which may name another machine, and reads the config again
//     for the new name.
//   - BindInterface: the source address would be chosen by interface; BindAddress is honoured.
//
// Ignored on purpose: keys of an interactive session (LocalCommand, Tunnel, LocalForward,
// RemoteForward, DynamicForward, RemoteCommand, RequestTTY, ForwardAgent, ControlMaster...),
// since ferry opens its own sessions on a connection that is the same without them; and the host
// key policy (StrictHostKeyChecking, UserKnownHostsFile, CheckHostIP), since ferry checks every
// host strictly against its own known_hosts whatever they say.
func resolve(spec string, o Options) (target, error) {
	t := target{alias: spec, network: "tcp"}
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
	refuse := func(format string, args ...any) (target, error) {
		return t, fmt.Errorf("%s: host %s: %s", o.ConfigFile, t.alias, fmt.Sprintf(format, args...))
	}
	jump, command := get("ProxyJump"), commandValue(cfg, t.alias, "ProxyCommand")
	if jump != "" && command != "" && !(strings.EqualFold(jump, "none") && strings.EqualFold(command, "none")) {
		return refuse("both ProxyJump %s and ProxyCommand %s are set; OpenSSH uses whichever comes first in its files and ferry does not guess which: set only one for this host", jump, command)
	}
	if !strings.EqualFold(jump, "none") {
		t.jump = jump
	}
	if !strings.EqualFold(command, "none") {
		t.command = command
	}
	t.keyAlias = get("HostKeyAlias")
	switch v := strings.ToLower(get("AddressFamily")); v {
	case "", "any":
	case "inet":
		t.network = "tcp4"
	case "inet6":
		t.network = "tcp6"
	default:
		return refuse("AddressFamily %s: want any, inet or inet6", v)
	}
	t.bind = get("BindAddress")
	if t.command != "" && strings.EqualFold(get("ProxyUseFdpass"), "yes") {
		return refuse("ProxyUseFdpass yes is not supported: ferry relays the connection over the ProxyCommand's stdin and stdout; remove ProxyUseFdpass for this host")
	}
	if v := get("BindInterface"); v != "" && t.jump == "" && t.command == "" {
		return refuse("BindInterface %s is not supported: use BindAddress with that interface's address", v)
	}
	if canonicalizes(t, get) {
		return refuse("CanonicalizeHostname %s would rewrite %s with CanonicalDomains %s, which ferry does not do: give the full host name, or set HostName", get("CanonicalizeHostname"), t.host, get("CanonicalDomains"))
	}
	return t, nil
}

// canonicalizes tells whether OpenSSH would rewrite t.host under CanonicalizeHostname: only a
// name (not an address) with at most CanonicalizeMaxDots dots, with CanonicalDomains to try, and
// through a proxy only with "always".
func canonicalizes(t target, get func(string) string) bool {
	mode := strings.ToLower(get("CanonicalizeHostname"))
	if mode != "yes" && mode != "always" || get("CanonicalDomains") == "" {
		return false
	}
	if mode == "yes" && (t.jump != "" || t.command != "") {
		return false
	}
	if net.ParseIP(t.host) != nil || strings.HasSuffix(t.host, ".") {
		return false
	}
	maxDots := 1
	if n, err := strconv.Atoi(get("CanonicalizeMaxDots")); err == nil {
		maxDots = n
	}
	return strings.Count(t.host, ".") <= maxDots
}

// commandValue is cfg.Get for a value that is a shell command. The ssh_config library strips
// double quotes around a whole value, which would turn `"/opt/proxy" "%h"` into a command with
// unbalanced quotes; OpenSSH keeps the line as written.
func commandValue(cfg *ssh_config.Config, alias, key string) string {
	if cfg == nil {
		return ""
	}
	for _, h := range cfg.Hosts {
		if !h.Matches(alias) {
			continue
		}
		for _, n := range h.Nodes {
			switch n := n.(type) {
			case *ssh_config.KV:
				if !strings.EqualFold(n.Key, key) {
					continue
				}
				line := n.String()
				if n.Comment != "" {
					line = strings.TrimSuffix(line, "#"+n.Comment)
				}
				if quoted := `"` + n.Value + `"`; strings.HasSuffix(strings.TrimRightFunc(line, unicode.IsSpace), quoted) {
					return quoted
				}
				return n.Value
			case *ssh_config.Include:
				if v := n.Get(alias, key); v != "" {
					return v
				}
			}
		}
	}
	return ""
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

// maxJumpDepth bounds a chain of ProxyJump hosts, each reached through the next, as a loop would.
const maxJumpDepth = 5

func (h *SSH) dial(ctx context.Context, spec string, o Options, depth int) (*ssh.Client, error) {
	t, err := resolve(spec, o)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(t.host, t.port)
	var conn net.Conn
	var proxy *proxyConn
	switch {
	case t.jump != "":
		if depth >= maxJumpDepth {
			return nil, fmt.Errorf("ProxyJump %s: more than %d hosts deep; is there a loop in %s?", t.jump, maxJumpDepth, o.ConfigFile)
		}
		t.proxied = true
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
	case t.command != "":
		t.proxied = true
		proxy, err = startProxy(t, o.Timeout)
		if err != nil {
			return nil, err
		}
		conn = proxy
	default:
		d := net.Dialer{Timeout: o.Timeout}
		if t.bind != "" {
			if d.LocalAddr, err = net.ResolveTCPAddr(t.network, net.JoinHostPort(t.bind, "0")); err != nil {
				return nil, fmt.Errorf("BindAddress %s: %w", t.bind, err)
			}
		}
		conn, err = d.DialContext(ctx, t.network, addr)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	if depth == 0 {
		conn = &countingConn{Conn: conn, sent: &h.sent, received: &h.received}
	}
	c, err := handshake(ctx, conn, t, addr, o)
	if err != nil && proxy != nil {
		// conn is closed: if the command ended the connection, say how rather than "EOF".
		if perr := proxy.failure(err); perr != nil {
			return nil, perr
		}
	}
	return c, err
}

// clientVia connects to spec through an established connection (a ProxyJump hop).
func clientVia(ctx context.Context, via *ssh.Client, spec string, o Options) (*ssh.Client, error) {
	t, err := resolve(spec, o)
	if err != nil {
		return nil, err
	}
	t.proxied = true
	addr := net.JoinHostPort(t.host, t.port)
	conn, err := via.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	return handshake(ctx, conn, t, addr, o)
}

// handshake runs the SSH handshake for t on conn, closing conn if it fails or ctx ends first.
func handshake(ctx context.Context, conn net.Conn, t target, addr string, o Options) (*ssh.Client, error) {
	cfg, err := clientConfig(t, addr, o)
	if err != nil {
		conn.Close()
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if !stop() && err == nil {
		c.Close()
		err = ctx.Err()
	}
	if err != nil {
		conn.Close()
		var hke *HostKeyError
		if errors.As(err, &hke) {
			return nil, hke
		}
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("ssh %s@%s: %w", t.user, addr, err)
	}
	return ssh.NewClient(c, chans, reqs), nil
}
