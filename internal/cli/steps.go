package cli

import (
	"fmt"
	"strings"

	"github.com/ferry-deploy/ferry/internal/deploy"
	"github.com/ferry-deploy/ferry/internal/human"
)

// describe words a step of the engine for people: the part of its line after host and kind.
func describe(s deploy.Step) string {
	switch s.Kind {
	case deploy.StepScan:
		return fmt.Sprintf("%s files (%s) in %s", human.Count(s.Files.Files), human.Bytes(s.Files.Bytes), s.Dir)
	case deploy.StepBuild, deploy.StepHook:
		return s.Command
	case deploy.StepExport:
		return fmt.Sprintf("%s (commit %s) into %s", s.Ref, s.Commit[:min(len(s.Commit), 12)], s.Dir)
	case deploy.StepLock:
		return "acquired after waiting for another run"
	case deploy.StepUpload:
		f := s.Files
		msg := fmt.Sprintf("%s: %s files, %s sent (%s)", s.Release, human.Count(f.Files), human.Count(f.Sent), human.Bytes(f.SentBytes))
		if s.OnWire > 0 {
			msg += fmt.Sprintf(", %s on the wire", human.Bytes(s.OnWire))
		}
		if f.Reused > 0 {
			msg += fmt.Sprintf(", %s reused from %s", human.Count(f.Reused), s.From)
		}
		if f.Carried > 0 {
			msg += fmt.Sprintf(", %s carried over", human.Plural(f.Carried, "old asset"))
		}
		return msg
	case deploy.StepShared:
		return fmt.Sprintf("shared/%s replaced by %s", strings.Join(s.Paths, ", "), s.From)
	case deploy.StepStart:
		how := "started"
		if s.Reused {
			how = "still running"
		}
		return fmt.Sprintf("%s %s, answers on %s", s.Service, how, s.Socket)
	case deploy.StepActivate:
		return "current -> releases/" + s.Release
	case deploy.StepRollback:
		if s.Reverted {
			return fmt.Sprintf("current -> releases/%s; %s marked bad", s.Release, s.Previous)
		}
		return fmt.Sprintf("current -> releases/%s (was %s, now marked bad)", s.Release, s.Previous)
	case deploy.StepEnv:
		return fmt.Sprintf("shared %s changed since the last activation: services with a restart command are restarted, since a reload does not re-read the environment", strings.Join(s.Paths, ", "))
	case deploy.StepHealth:
		return fmt.Sprintf("%s: %d", s.URL, s.Status)
	case deploy.StepCleanup:
		if s.Kept > 0 {
			return fmt.Sprintf("removed %s, kept up to %d", human.Plural(len(s.Removed), "release"), s.Kept)
		}
		return "removed " + human.Plural(len(s.Removed), "old release")
	case deploy.StepStop:
		msg := fmt.Sprintf("%s of release %s drains", s.Service, s.Release)
		if s.Signal != "" {
			msg += fmt.Sprintf(" (SIG%s, then SIGKILL after %s)", s.Signal, s.Drain)
		}
		return msg
	default: // a service's reload or restart
		return s.Service
	}
}
