package config

// Variables per host: `hosts: [{ssh: web1, vars: {port: "8082"}}]`. A host's vars override the
// file's (and its environment's) for that host alone. What may differ between hosts is what
// runs on each (hooks, services, the health check), its root, and the host's own entry (ssh,
// roles, name); for each host with vars, those are decoded once more with its vars, so every
// value keeps its line for errors. Everything else is the fleet's, the same on every host: a
// host's var that a fleet-wide value uses is refused. (on_failure and after_rollback hooks run
// once for the fleet, so they are the fleet's too.)

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// perHostKeys are the top-level keys of ferry.yaml that a host's vars may change.
var perHostKeys = []string{"root", "hooks", "services", "health"}

// fleetHooks are the hooks that run once for the fleet: a host's vars may not change them.
var fleetHooks = []string{"hooks.on_failure", "hooks.after_rollback"}

// perHostBudget is how many times the file's own budget of values and text (see spend) the
// decodings for every host together may use: a fleet's hooks decoded once per host are far
// below it, a file that repeats a large value across thousands of hosts is not.
const perHostBudget = 4

// hostVars are the vars of one host of the hosts list.
type hostVars struct {
	index int
	at    ast.Node // the vars key, for errors
	entry ast.Node // the host's mapping, without vars
	vars  map[string]string
}

// takeHostVars removes vars from every host mapping of hosts and returns them.
func (d *decoder) takeHostVars(body ast.Node) (ast.Node, []hostVars, error) {
	top, i := d.topKey(body, "hosts")
	if i < 0 {
		return body, nil, nil
	}
	hosts, err := d.resolve(top.Values[i].Value)
	if err != nil {
		return nil, nil, err
	}
	seq, ok := hosts.(*ast.SequenceNode)
	if !ok {
		return body, nil, nil // the decoder says what is wrong with it
	}
	var out []hostVars
	items := slices.Clone(seq.Values)
	for j, item := range items {
		h, err := d.resolve(item)
		if err != nil {
			return nil, nil, err
		}
		m, ok := h.(*ast.MappingNode)
		if !ok {
			continue
		}
		k := slices.IndexFunc(m.Values, func(kv *ast.MappingValueNode) bool { return d.keyName(kv.Key) == "vars" })
		if k < 0 {
			continue
		}
		vars, err := d.varsOf(m.Values[k].Value, fmt.Sprintf("hosts[%d].vars", j))
		if err != nil {
			return nil, nil, err
		}
		items[j] = withValues(m, slices.Delete(slices.Clone(m.Values), k, k+1))
		out = append(out, hostVars{index: j, at: m.Values[k].Key, entry: items[j], vars: vars})
		for name := range vars {
			if d.hostOnly == nil {
				d.hostOnly = map[string]string{}
			}
			if _, ok := d.hostOnly[name]; !ok {
				d.hostOnly[name] = fmt.Sprintf("hosts[%d].vars", j)
			}
		}
	}
	if len(out) == 0 {
		return body, nil, nil
	}
	newSeq := *seq
	newSeq.Values = items
	values := slices.Clone(top.Values)
	kv := *values[i]
	kv.Value = &newSeq
	values[i] = &kv
	return withValues(top, values), out, nil
}

// perHost makes, for each host with vars of its own, its config for ForHost: c with the
// per-host keys and the host's entry decoded again with its vars.
func (d *decoder) perHost(c *Config, body ast.Node, hosts []hostVars) error {
	if len(hosts) == 0 {
		return nil
	}
	top := body.(*ast.MappingNode) // hosts came from it
	var keep []*ast.MappingValueNode
	for _, kv := range top.Values {
		if slices.Contains(perHostKeys, d.keyName(kv.Key)) {
			keep = append(keep, kv)
		}
	}
	own := withValues(top, keep)
	c.hostConfigs = make([]*Config, len(c.Hosts))
	hd := *d
	hd.values, hd.text = perHostBudget*d.budgetValues, perHostBudget*d.budgetText
	// First every host's entry and what may differ, so that the hosts list is whole (roles,
	// roots) before any host's config is checked against it.
	for _, hv := range hosts {
		if key := d.fleetUse(hv.vars); key != "" {
			return d.errorf(hv.at, "hosts[%d].vars: they change %s, which must be the same on every host; only %s, and the host's own ssh, roles and name, may differ per host", hv.index, key, strings.Join(perHostKeys, ", "))
		}
		hd.vars = maps.Clone(d.vars)
		if hd.vars == nil {
			hd.vars = map[string]string{}
		}
		maps.Copy(hd.vars, hv.vars)
		hd.merging = map[ast.Node]bool{}
		var part Config
		if err := hd.decode(own, reflect.ValueOf(&part).Elem(), "$"); err != nil {
			return withHost(err, hv.index)
		}
		var h Host
		if err := hd.decode(hv.entry, reflect.ValueOf(&h).Elem(), fmt.Sprintf("$.hosts[%d]", hv.index)); err != nil {
			return withHost(err, hv.index)
		}
		hc := *c
		hc.Root, hc.Hooks, hc.Services, hc.Health, hc.hostConfigs = part.Root, part.Hooks, part.Services, part.Health, nil
		if h.Root == "" && hc.Root != c.Root {
			h.Root = hc.Root // the host's root, for every command that lists the hosts
		}
		c.Hosts[hv.index] = h
		c.hostConfigs[hv.index] = &hc
	}
	maps.Copy(d.fromEnvMap(), hd.fromEnv)
	for _, hv := range hosts {
		hc := c.hostConfigs[hv.index]
		hc.Hosts = c.Hosts
		if err := hd.finish(hc); err != nil {
			return withHost(err, hv.index)
		}
	}
	return d.finish(c)
}

// fleetUse names the first fleet-wide key of ferry.yaml that uses one of vars, or "".
func (d *decoder) fleetUse(vars map[string]string) string {
	for _, name := range slices.Sorted(maps.Keys(vars)) {
		for _, key := range d.usedBy[name] {
			top, _, _ := strings.Cut(key, ".")
			if slices.Contains(fleetHooks, key) || !slices.Contains(perHostKeys, top) && top != "hosts" {
				return key
			}
		}
	}
	return ""
}

// use records that the value at key (hooks.before_activate[0].run) uses variable name: by
// its top-level key, and for hooks by their stage.
func (d *decoder) use(name, key string) {
	top := key
	if i := strings.IndexAny(key, ".["); i >= 0 {
		top = key[:i]
	}
	if top == "hooks" {
		if i := strings.IndexAny(key[len("hooks."):], ".["); i >= 0 {
			top = key[:len("hooks.")+i]
		} else {
			top = key
		}
	}
	if d.usedBy == nil {
		d.usedBy = map[string][]string{}
	}
	if !slices.Contains(d.usedBy[name], top) {
		d.usedBy[name] = append(d.usedBy[name], top)
	}
}

// withHost says which host's vars an error of its config came with.
func withHost(err error, i int) error {
	var e *Error
	if errors.As(err, &e) {
		e2 := *e
		e2.Msg = fmt.Sprintf("%s (with the vars of hosts[%d])", e.Msg, i)
		return &e2
	}
	return err
}

func (d *decoder) fromEnvMap() map[string]string {
	if d.fromEnv == nil {
		d.fromEnv = map[string]string{}
	}
	return d.fromEnv
}

// ForHost is the config of host i of Hosts: the file decoded with that host's vars, or c
// itself when the host has none.
func (c *Config) ForHost(i int) *Config {
	if i < len(c.hostConfigs) && c.hostConfigs[i] != nil {
		return c.hostConfigs[i]
	}
	return c
}
