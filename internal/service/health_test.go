package service

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A wait for a new process's socket that is interrupted says so, not what the last try met.
func TestReadyInterruptedSaysSo(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "app.sock") // nothing listens there
	var d net.Dialer
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel) // the operator's ^C, while ferry waits
	err := Ready(ctx, d.DialContext, sock, nil, "r1", time.Minute, nil)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "interrupted while waiting") {
		t.Fatalf("err = %v; want it to say the wait was interrupted", err)
	}
	// A wait that times out still says what the last try met.
	err = Ready(context.Background(), d.DialContext, sock, nil, "r1", 200*time.Millisecond, nil)
	var he *HealthError
	if !errors.As(err, &he) {
		t.Fatalf("err = %v; want a HealthError", err)
	}
}
