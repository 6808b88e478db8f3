package release

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
)

// Event types of the log.
const (
	EventPrepare  = "prepare"  // a release directory is about to be created
	EventComplete = "complete" // upload, shared links and before_activate hooks succeeded
	EventFailed   = "failed"   // preparing the release failed
	EventActivate = "activate" // current now points at the release
	EventRollback = "rollback" // current now points at the release; From is marked bad
	EventRemoved  = "removed"  // the release directory was removed
)

// Event is one line of <root>/.ferry/log.jsonl.
type Event struct {
	Time    time.Time         `json:"time"`
	Type    string            `json:"event"`
	Release string            `json:"release"`
	From    string            `json:"from,omitempty"`
	Message string            `json:"message,omitempty"`
	User    string            `json:"user,omitempty"`
	Git     *Git              `json:"git,omitempty"`
	Error   string            `json:"error,omitempty"`
	Shared  map[string]string `json:"shared,omitempty"`
	// Manifest is the SHA-256 of the release's manifest as stored, on complete events.
	Manifest string `json:"manifest,omitempty"`
}

// parseLog returns every event of the log's content in the order written. A line that does not
// parse (torn by a crash mid-write) is skipped.
func parseLog(data []byte) []Event {
	var events []Event
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		var ev Event
		if len(bytes.TrimSpace(line)) == 0 || json.Unmarshal(line, &ev) != nil || ev.Release == "" {
			continue
		}
		events = append(events, ev)
	}
	return events
}

// Status of a release as the log tells it.
type Status string

// Statuses.
const (
	StatusPreparing Status = "incomplete"
	StatusComplete  Status = "complete"
	StatusFailed    Status = "failed"
	StatusRemoved   Status = "removed"
)

// Git is the commit a release was built from, on prepare events: its id, the branch checked out
// ("" when detached) and whether the work tree had changes not committed.
type Git struct {
	Commit string `json:"commit"`
	Branch string `json:"branch,omitempty"`
	Dirty  bool   `json:"dirty,omitempty"`
}

// Release is what ferry knows of one release.
type Release struct {
	ID        string    `json:"id"`
	Prepared  time.Time `json:"time"`
	Status    Status    `json:"status"`
	Bad       bool      `json:"bad,omitempty"`
	Current   bool      `json:"current,omitempty"`
	Exists    bool      `json:"exists"`
	Message   string    `json:"message,omitempty"`
	User      string    `json:"user,omitempty"`
	Git       *Git      `json:"git,omitempty"`
	Activated time.Time `json:"activated,omitzero"`
	Error     string    `json:"error,omitempty"`
	// Shared holds the hashes of shared files at the release's last activation.
	Shared map[string]string `json:"-"`
	// Manifest is the SHA-256 of the stored manifest, when the log recorded it.
	Manifest string `json:"-"`
}

// State is the view of a root: releases in the order they were prepared (the log's order,
// never directory mtimes), where current points, and what does not belong.
type State struct {
	Releases []*Release
	Current  string   // release id current points at; "" when there is none
	Unknown  []string // directories in releases/ that the log does not know
	// LastShared holds the hashes of shared files at the last activation.
	LastShared map[string]string
}

// buildState makes the state from the log's content, the entries of releases/ (name to
// is-directory) and the target of current ("" when current is not a symlink).
func buildState(log []byte, entries map[string]bool, currentTarget, releasesDir string) *State {
	st := &State{}
	byID := map[string]*Release{}
	for _, ev := range parseLog(log) {
		rel := byID[ev.Release]
		if rel == nil {
			rel = &Release{ID: ev.Release, Prepared: ev.Time, Status: StatusPreparing}
			byID[ev.Release] = rel
			st.Releases = append(st.Releases, rel)
		}
		switch ev.Type {
		case EventPrepare:
			rel.Message, rel.User, rel.Git = ev.Message, ev.User, ev.Git
		case EventComplete:
			rel.Status, rel.Manifest = StatusComplete, ev.Manifest
		case EventFailed:
			rel.Status, rel.Error = StatusFailed, ev.Error
		case EventActivate, EventRollback:
			rel.Activated, rel.Bad = ev.Time, false
			rel.Shared = ev.Shared
			st.LastShared = ev.Shared
			if ev.Type == EventRollback && ev.From != "" && byID[ev.From] != nil {
				byID[ev.From].Bad = true
			}
		case EventRemoved:
			rel.Status = StatusRemoved
		}
	}
	for name, isDir := range entries {
		if rel := byID[name]; rel != nil {
			rel.Exists = true
		} else if isDir {
			st.Unknown = append(st.Unknown, name)
		}
	}
	slices.Sort(st.Unknown)
	for _, rel := range st.Releases {
		if rel.Status == StatusRemoved && rel.Exists {
			// Removed from the log's point of view but the rename did not happen: treat it as
			// leftover of an interrupted cleanup.
			rel.Status = StatusPreparing
		}
	}
	// A current that is not a link (a directory left by another tool) has no release; deploys
	// refuse it with a hint, ferry check reports it.
	st.Current = releaseOfLink(currentTarget, releasesDir)
	for _, rel := range st.Releases {
		rel.Current = rel.ID == st.Current
	}
	return st
}

// releaseOfLink returns the release id that a current link target names: "releases/<id>" as ferry
// writes it, or an absolute path into releases/ as the article's script writes it.
func releaseOfLink(target, releasesDir string) string {
	target = strings.TrimSuffix(target, "/")
	if dir, id := path.Split(target); id != "" {
		dir = strings.TrimSuffix(dir, "/")
		if dir == "releases" || dir == releasesDir {
			return id
		}
	}
	return ""
}

// Find returns the release with id, or nil.
func (s *State) Find(id string) *Release {
	for _, rel := range s.Releases {
		if rel.ID == id {
			return rel
		}
	}
	return nil
}

// Live reports whether rel can be activated: complete and still on disk.
func (rel *Release) Live() bool { return rel.Status == StatusComplete && rel.Exists }

// RollbackTarget is the newest complete release prepared before current that is not marked bad.
func (s *State) RollbackTarget() (*Release, error) {
	if s.Current == "" {
		return nil, errors.New("there is no current release to roll back from")
	}
	idx := -1
	for i, rel := range s.Releases {
		if rel.ID == s.Current {
			idx = i
		}
	}
	if idx < 0 {
		return nil, fmt.Errorf("current points at %s, which ferry did not deploy", s.Current)
	}
	for i := idx - 1; i >= 0; i-- {
		if rel := s.Releases[i]; rel.Live() && !rel.Bad {
			return rel, nil
		}
	}
	return nil, fmt.Errorf("no earlier complete release to roll back to from %s", s.Current)
}

// Incomplete lists releases whose preparation never finished and whose directory remains.
func (s *State) Incomplete() []*Release {
	var out []*Release
	for _, rel := range s.Releases {
		if rel.Status == StatusPreparing && rel.Exists {
			out = append(out, rel)
		}
	}
	return out
}
