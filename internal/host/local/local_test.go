package local

import (
	"testing"

	"github.com/ferry-deploy/ferry/internal/host"
	"github.com/ferry-deploy/ferry/internal/host/hosttest"
)

func TestConformance(t *testing.T) {
	hosttest.Run(t, func(*testing.T) host.Host { return New() })
}
