package release

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// IDLayout is the UTC timestamp format of release ids.
const IDLayout = "20060102-150405"

// NewID returns the id for a release prepared at now: its UTC second, suffixed -2, -3, … when
// the log or releases/ of any of the given hosts' states already has that second. Ids are never
// reused, even when the clock goes back: order comes from the log, so an id that sorts lower is
// still newer.
func NewID(now time.Time, states ...*State) string {
	taken := map[string]bool{}
	for _, st := range states {
		for _, rel := range st.Releases {
			taken[rel.ID] = true
		}
		for _, id := range st.Unknown {
			taken[id] = true
		}
	}
	base := now.UTC().Format(IDLayout)
	id := base
	for n := 2; taken[id]; n++ {
		id = base + "-" + strconv.Itoa(n)
	}
	return id
}

// ParseID checks that id has the form of a release id and returns the time it names.
func ParseID(id string) (time.Time, error) {
	base, suffix, hasSuffix := strings.Cut(id[min(len(id), len(IDLayout)):], "-")
	if len(id) < len(IDLayout) || base != "" {
		return time.Time{}, fmt.Errorf("%q is not a release id (want YYYYMMDD-HHMMSS[-N])", id)
	}
	t, err := time.Parse(IDLayout, id[:len(IDLayout)])
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a release id (want YYYYMMDD-HHMMSS[-N])", id)
	}
	if hasSuffix {
		n, err := strconv.Atoi(suffix)
		if err != nil || n < 2 || strconv.Itoa(n) != suffix {
			return time.Time{}, fmt.Errorf("%q is not a release id (suffix must be a number from 2)", id)
		}
	}
	return t, nil
}
