package deploy

import (
	"time"

	"github.com/ferry-deploy/ferry/internal/transfer"
)

// A Step is one finished step of a host, as data: what it did, to what, and how long it took.
// How it reads is the reporter's (the cli words it for people, and --json writes it as it is).
// Only the fields of its Kind are set.
type Step struct {
	Host string        `json:"host"`
	Kind string        `json:"step"`
	Took time.Duration `json:"took_ns,omitempty"`

	// Release is the release the step made (upload), swapped to (activate, rollback), or whose
	// process it stopped (stop). Previous is the one current left (rollback).
	Release  string `json:"release,omitempty"`
	Previous string `json:"previous,omitempty"`
	// Reverted marks the rollback of a failed activation: Previous is the release marked bad.
	Reverted bool `json:"reverted,omitempty"`

	// Files are the files of the build (scan: Files and Bytes) or the release (upload); From is
	// the release whose files were linked (upload), or the file a shared path was replaced by
	// (shared); OnWire the bytes an SSH host's upload took, both ways.
	Files  *transfer.Stats `json:"files,omitempty"`
	From   string          `json:"from,omitempty"`
	OnWire int64           `json:"on_wire,omitempty"`

	Dir     string `json:"dir,omitempty"`     // scan: the build; export: where it went
	Command string `json:"command,omitempty"` // hook, build
	Ref     string `json:"ref,omitempty"`     // export: the git ref, and Commit its commit
	Commit  string `json:"commit,omitempty"`

	// Service names the service a reload, restart, start or stop was for; Socket is where a
	// started process answers; Reused says it was running already (start). Drain is how a
	// stopped process is let go: its signal and how long before SIGKILL, "" under a supervisor.
	Service string `json:"service,omitempty"`
	Socket  string `json:"socket,omitempty"`
	Reused  bool   `json:"reused,omitempty"`
	Signal  string `json:"signal,omitempty"`
	Drain   string `json:"drain,omitempty"`

	URL    string `json:"url,omitempty"` // health: what was asked, and the status it answered
	Status int    `json:"status,omitempty"`

	// Paths are the shared files that changed (env), or the shared path replaced from From
	// (shared). Removed are the releases cleanup removed, Kept how many it keeps.
	Paths   []string `json:"paths,omitempty"`
	Removed []string `json:"removed,omitempty"`
	Kept    int      `json:"kept,omitempty"`
}

// The kinds of Step.
const (
	StepScan     = "scan"     // Files (Files, Bytes), Dir
	StepBuild    = "build"    // Command
	StepExport   = "export"   // Ref, Commit, Dir
	StepLock     = "lock"     // a lock another run held, acquired after waiting
	StepUpload   = "upload"   // Release, Files, From, OnWire
	StepShared   = "shared"   // Paths[0] replaced by From
	StepHook     = "hook"     // Command
	StepStart    = "start"    // Service, Socket, Reused
	StepActivate = "activate" // Release
	StepRollback = "rollback" // Release, Previous, Reverted
	StepEnv      = "env"      // Paths
	StepHealth   = "health"   // URL, Status
	StepCleanup  = "cleanup"  // Removed, Kept
	StepStop     = "stop"     // Service, Release, Signal, Drain
	// A service's reload or restart is a step of that kind (service.Action.Kind), with Service.
)
