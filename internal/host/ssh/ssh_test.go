package ssh

import (
	"context"
	"testing"

	"github.com/ferry-deploy/ferry/internal/host"
	"github.com/ferry-deploy/ferry/internal/host/hosttest"
	"github.com/ferry-deploy/ferry/internal/webtest"
)

// The contract, over real OpenSSH servers: one with Debian's GNU userland, one whose sessions
// see only BusyBox, as on Alpine.
func TestConformance(t *testing.T) {
	for _, busybox := range []bool{false, true} {
		name := "gnu"
		if busybox {
			name = "busybox"
		}
		t.Run(name, func(t *testing.T) {
			client := webtest.NewSSHClient(t)
			srv := webtest.StartSSHDWith(t, client, webtest.SSHDOptions{BusyBox: busybox})
			client.Alias(t, "web1", srv)
			opts := Options{ConfigFile: client.Config, KnownHostsFile: client.KnownHosts, IdentityFiles: []string{client.KeyFile}}
			hosttest.Run(t, func(t *testing.T) host.Host {
				h, err := Dial(context.Background(), "web1", "web1", opts)
				if err != nil {
					t.Fatal(err)
				}
				return h
			})
		})
	}
}

// KeepAlive is answered by OpenSSH, and fails once the connection is gone.
func TestKeepAlive(t *testing.T) {
	h := dialTestServer(t)
	if err := h.KeepAlive(); err != nil {
		t.Fatalf("keepalive on a live connection: %v", err)
	}
	h.Close()
	if err := h.KeepAlive(); err == nil {
		t.Fatal("keepalive on a closed connection succeeded")
	}
}

// dialTestServer starts a real sshd on loopback and connects to it as web1.
func dialTestServer(t *testing.T) *SSH {
	t.Helper()
	client := webtest.NewSSHClient(t)
	srv := webtest.StartSSHD(t, client, false)
	client.Alias(t, "web1", srv)
	h, err := Dial(context.Background(), "web1", "web1", Options{ConfigFile: client.Config, KnownHostsFile: client.KnownHosts, IdentityFiles: []string{client.KeyFile}})
	if err != nil {
		t.Fatal(err)
	}
	return h
}
