package config

// Environments and variables: `environments:` holds a mapping per environment (staging,
// production) whose keys override the file's own, and `vars:` holds values that {{name}}
// stands for in any string of the file. Both are resolved on the parsed file, before it is
// decoded, so that every error still points at the line that holds the bad value.

import (
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// Options are what a config is loaded with besides the file.
type Options struct {
	// Environment names the environment to use (ferry -e, or FERRY_ENV): required when the file
	// has environments, refused when it has none.
	Environment string
	// Getenv looks up the deployer's environment variables for {{env.NAME}}; nil is os.LookupEnv.
	Getenv func(string) (string, bool)
}

// varRef is a variable in a string: {{name}}, {{ name }}, {{env.NAME}}. Anything else between
// braces (a Go template's {{.Name}} in a hook, say) is left as it is.
var varRef = regexp.MustCompile(`\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)\s*\}\}`)

// runtimeVars are filled in by ferry at run time, not from the file.
var runtimeVars = []string{"release", "socket"}

// chooseEnvironment returns the file's top-level mapping with environment name's keys merged
// over it (mappings merge key by key; anything else, lists included, is replaced), and without
// the environments key. It returns the environments' names.
func (d *decoder) chooseEnvironment(body ast.Node, name string) (ast.Node, []string, error) {
	top, ok := body.(*ast.MappingNode)
	if !ok {
		if name != "" {
			return nil, nil, d.errorf(body, "-e %s: ferry.yaml has no environments", name)
		}
		return body, nil, nil
	}
	i := slices.IndexFunc(top.Values, func(kv *ast.MappingValueNode) bool { return d.keyName(kv.Key) == "environments" })
	if i < 0 {
		if name != "" {
			return nil, nil, d.errorf(top, "-e %s: ferry.yaml has no environments (add environments: {%s: {...}}, or drop -e and FERRY_ENV)", quote(name), name)
		}
		return body, nil, nil
	}
	envKV := top.Values[i]
	envs, err := d.resolve(envKV.Value)
	if err != nil {
		return nil, nil, err
	}
	envMap, ok := envs.(*ast.MappingNode)
	if !ok {
		return nil, nil, d.errorf(envKV.Value, "environments: expected a mapping of names to settings, such as {staging: {root: /srv/staging}}, got %s", describe(envs))
	}
	var names []string
	var chosen ast.Node
	for _, kv := range envMap.Values {
		n := d.keyName(kv.Key)
		names = append(names, n)
		if n == name {
			chosen = kv.Value
		}
	}
	rest := withValues(top, slices.Delete(slices.Clone(top.Values), i, i+1))
	if name == "" {
		return nil, names, d.errorf(envKV.Key, "ferry.yaml has environments (%s): choose one with -e NAME or FERRY_ENV=NAME", strings.Join(names, ", "))
	}
	if chosen == nil {
		return nil, names, d.errorf(envKV.Key, "environment %s is not in ferry.yaml (environments: %s)", quote(name), strings.Join(names, ", "))
	}
	over, err := d.resolve(chosen)
	if err != nil {
		return nil, names, err
	}
	switch m := over.(type) {
	case *ast.NullNode:
		return rest, names, nil // an environment with nothing of its own
	case *ast.MappingNode:
		for _, kv := range m.Values {
			if k := d.keyName(kv.Key); k == "environments" {
				return nil, names, d.errorf(kv.Key, "environments.%s: an environment cannot have environments of its own", name)
			}
		}
		merged, err := d.merge(rest, m)
		return merged, names, err
	default:
		return nil, names, d.errorf(chosen, "environments.%s: expected a mapping of settings, got %s", name, describe(over))
	}
}

// withValues is a mapping like m, with values instead of its own; m is left as it is.
func withValues(m *ast.MappingNode, values []*ast.MappingValueNode) *ast.MappingNode {
	return &ast.MappingNode{BaseNode: m.BaseNode, Start: m.Start, End: m.End, IsFlowStyle: m.IsFlowStyle, Values: values}
}

// merge returns base with over's keys: a key both have as mappings is merged, any other of
// over's values replaces base's.
func (d *decoder) merge(base, over *ast.MappingNode) (*ast.MappingNode, error) {
	out := withValues(base, slices.Clone(base.Values))
	for _, kv := range over.Values {
		if kv.Key.IsMergeKey() {
			return nil, d.errorf(kv.Key, "a merge key (<<) cannot be in an environment: write the keys out")
		}
		name := d.keyName(kv.Key)
		j := slices.IndexFunc(out.Values, func(b *ast.MappingValueNode) bool { return !b.Key.IsMergeKey() && d.keyName(b.Key) == name })
		if j < 0 {
			out.Values = append(out.Values, kv)
			continue
		}
		bv, err := d.resolve(out.Values[j].Value)
		if err != nil {
			return nil, err
		}
		ov, err := d.resolve(kv.Value)
		if err != nil {
			return nil, err
		}
		bm, ok1 := bv.(*ast.MappingNode)
		om, ok2 := ov.(*ast.MappingNode)
		if !ok1 || !ok2 {
			out.Values[j] = kv
			continue
		}
		m, err := d.merge(bm, om)
		if err != nil {
			return nil, err
		}
		nkv := *kv
		nkv.Value = m
		out.Values[j] = &nkv
	}
	return out, nil
}

// takeVars removes the vars key from the top-level mapping and returns its values: scalars,
// which may use {{env.NAME}} and {{environment}}.
func (d *decoder) takeVars(body ast.Node) (ast.Node, map[string]string, error) {
	top, i := d.topKey(body, "vars")
	if i < 0 {
		return body, nil, nil
	}
	kv := top.Values[i]
	rest := withValues(top, slices.Delete(slices.Clone(top.Values), i, i+1))
	vars, err := d.varsOf(kv.Value, "vars")
	if err != nil {
		return nil, nil, err
	}
	return rest, vars, nil
}

// topKey finds key name in body's top-level mapping: the mapping and the key's index, or -1.
func (d *decoder) topKey(body ast.Node, name string) (*ast.MappingNode, int) {
	top, ok := body.(*ast.MappingNode)
	if !ok {
		return nil, -1
	}
	return top, slices.IndexFunc(top.Values, func(kv *ast.MappingValueNode) bool { return d.keyName(kv.Key) == name })
}

// varsOf reads a vars mapping (at key): names to scalars, which may use {{env.NAME}} and
// {{environment}}.
func (d *decoder) varsOf(node ast.Node, key string) (map[string]string, error) {
	n, err := d.resolve(node)
	if err != nil {
		return nil, err
	}
	vars := map[string]string{}
	switch m := n.(type) {
	case *ast.NullNode:
		return vars, nil
	case *ast.MappingNode:
		for _, v := range m.Values {
			name := d.keyName(v.Key)
			if !varName.MatchString(name) {
				return nil, d.errorf(v.Key, "%s: %s is not a variable name: use letters, digits and _, starting with a letter", key, quote(name))
			}
			if slices.Contains(runtimeVars, name) || name == "environment" || name == "env" {
				return nil, d.errorf(v.Key, "%s: %s is ferry's own variable; choose another name", key, quote(name))
			}
			val, err := d.resolve(v.Value)
			if err != nil {
				return nil, err
			}
			var s string
			switch t := val.(type) {
			case *ast.StringNode:
				s = t.Value
			case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
				s = t.GetToken().Value
			default:
				return nil, d.errorf(v.Value, "%s.%s: expected a value such as \"8080\", got %s", key, name, describe(val))
			}
			if s, err = d.substitute(s, v.Value, key+"."+name); err != nil {
				return nil, err
			}
			if err := d.spend(v.Value, len(s)); err != nil {
				return nil, err
			}
			vars[name] = s
		}
		return vars, nil
	default:
		return nil, d.errorf(node, "%s: expected a mapping of names to values, such as {port: \"8080\"}, got %s", key, describe(n))
	}
}

var varName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)

// substitute replaces the variables in s, a value at node at (key names it in errors).
func (d *decoder) substitute(s string, at ast.Node, key string) (string, error) {
	if !strings.Contains(s, "{{") {
		return s, nil
	}
	var err error
	out := varRef.ReplaceAllStringFunc(s, func(m string) string {
		name := varRef.FindStringSubmatch(m)[1]
		if err != nil || slices.Contains(runtimeVars, name) {
			return m
		}
		if env, ok := strings.CutPrefix(name, "env."); ok {
			// Empty is unset: a CI secret that is not defined expands to "".
			v, _ := d.getenv(env)
			if v == "" {
				err = d.errorf(at, "%s: %s: the environment variable %s is not set (or empty)", key, m, env)
			}
			if d.fromEnv == nil {
				d.fromEnv = map[string]string{}
			}
			d.fromEnv[v] = "{{env." + env + "}}"
			return v
		}
		if name == "environment" {
			if d.environment == "" {
				err = d.errorf(at, "%s: %s: ferry.yaml has no environments, so there is none to name", key, m)
			}
			return d.environment
		}
		v, ok := d.vars[name]
		if ok {
			d.use(name, key)
		}
		if !ok {
			defined := "none"
			if len(d.vars) > 0 {
				defined = strings.Join(sortedKeys(d.vars), ", ")
			}
			if where, ok := d.hostOnly[name]; ok {
				err = d.errorf(at, "%s: unknown variable %s: %s defines it, but a host's vars only override the file's; give it a default under vars", key, m, where)
			} else {
				err = d.errorf(at, "%s: unknown variable %s: define it under vars (defined: %s), or use {{env.NAME}} for the environment", key, m, defined)
			}
		}
		return v
	})
	return out, err
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func lookupEnv(name string) (string, bool) { return os.LookupEnv(name) }
