package config

// Variables per host: `hosts: [{ssh: web1, vars: {port: "8082"}}]`. A host's vars override the
// file's (and its environment's) for that host alone. The file is decoded once more for each
// such host, so every value keeps its line for errors; what may differ between hosts is what
// runs on each (hooks, services, the health check) and the root. Everything else is the
// fleet's, the same on every host, and a host's vars that would change it are refused.

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// perHostKeys are the keys of ferry.yaml whose values may differ between hosts.
var perHostKeys = []string{"root", "hooks", "services", "health", "hosts"}

// hostVars are the vars of one host of the hosts list.
type hostVars struct {
	index int
	at    ast.Node // the vars key, for errors
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
		out = append(out, hostVars{index: j, at: m.Values[k].Key, vars: vars})
		for name := range vars {
			if d.hostOnly == nil {
				d.hostOnly = map[string]string{}
			}
			if _, ok := d.hostOnly[name]; !ok {
				d.hostOnly[name] = fmt.Sprintf("hosts[%d].vars", j)
			}
		}
		items[j] = withValues(m, slices.Delete(slices.Clone(m.Values), k, k+1))
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

// perHost decodes body again for each host with vars of its own, and keeps the result for
// ForHost. A host's vars may change only the per-host keys.
func (d *decoder) perHost(c *Config, body ast.Node, hosts []hostVars, o Options) error {
	if len(hosts) == 0 {
		return nil
	}
	c.hostConfigs = make([]*Config, len(c.Hosts))
	for _, hv := range hosts {
		hd := *d
		hd.vars = maps.Clone(d.vars)
		if hd.vars == nil {
			hd.vars = map[string]string{}
		}
		maps.Copy(hd.vars, hv.vars)
		hd.merging = map[ast.Node]bool{}
		hc, err := hd.build(body, o)
		if err != nil {
			return err
		}
		d.values, d.text = hd.values, hd.text // one budget for every decoding of the file
		maps.Copy(d.fromEnvMap(), hd.fromEnv)
		if key := fleetDifference(c, hc); key != "" {
			return d.errorf(hv.at, "hosts[%d].vars: they change %s, which must be the same on every host; only %s may differ per host", hv.index, key, strings.Join(perHostKeys[:4], ", "))
		}
		if c.Hosts[hv.index].Root == "" && hc.Root != c.Root {
			c.Hosts[hv.index].Root = hc.Root
		}
		hc.Hosts = c.Hosts
		c.hostConfigs[hv.index] = hc
	}
	return nil
}

func (d *decoder) fromEnvMap() map[string]string {
	if d.fromEnv == nil {
		d.fromEnv = map[string]string{}
	}
	return d.fromEnv
}

// fleetDifference names the first key of ferry.yaml, other than the per-host keys, whose
// values in a and b differ; "" when none does.
func fleetDifference(a, b *Config) string {
	va, vb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	t := va.Type()
	for i := range t.NumField() {
		key, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if key == "" || key == "-" || slices.Contains(perHostKeys, key) {
			continue
		}
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			return key
		}
	}
	return ""
}

// ForHost is the config of host i of Hosts: the file decoded with that host's vars, or c
// itself when the host has none.
func (c *Config) ForHost(i int) *Config {
	if i < len(c.hostConfigs) && c.hostConfigs[i] != nil {
		return c.hostConfigs[i]
	}
	return c
}
