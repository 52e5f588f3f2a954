package importer

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Reading YAML through yaml.Node, which keeps the line of every key and
// value: mappings with their merge keys (<<) and aliases resolved, and
// scalars checked against the type process-compose decodes them into.

// yEntry is one key of a mapping.
type yEntry struct {
	key  string
	k, v *yaml.Node
}

// maxMergeDepth bounds merge keys within merge keys.
const maxMergeDepth = 16

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < maxMergeDepth; i++ {
		n = n.Alias
	}
	return n
}

// yMapping returns the entries of a mapping in their order, with the
// entries of merged mappings (<<: *anchor) that it does not set itself
// after them.
func (c *converter) yMapping(path string, n *yaml.Node) ([]yEntry, error) {
	return c.yMappingDepth(path, n, 0)
}

func (c *converter) yMappingDepth(path string, n *yaml.Node, depth int) ([]yEntry, error) {
	n = resolve(n)
	if n == nil || isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, c.yErr(n, path, "expected a mapping, got %s", describeNode(n))
	}
	if depth > maxMergeDepth {
		return nil, c.yErr(n, path, "merge keys nested too deep")
	}
	var own, merged []yEntry
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, c.yErr(k, path, "a key must be a scalar, got %s", describeNode(k))
		}
		if k.Value == "<<" && k.Tag == "!!merge" {
			srcs := []*yaml.Node{resolve(v)}
			if srcs[0] != nil && srcs[0].Kind == yaml.SequenceNode {
				srcs = srcs[0].Content
			}
			for _, src := range srcs {
				es, err := c.yMappingDepth(path, src, depth+1)
				if err != nil {
					return nil, err
				}
				merged = append(merged, es...)
			}
			continue
		}
		if seen[k.Value] {
			return nil, c.yErr(k, path, "key %q is given twice", k.Value)
		}
		seen[k.Value] = true
		own = append(own, yEntry{key: k.Value, k: k, v: v})
	}
	for _, e := range merged {
		if !seen[e.key] {
			seen[e.key] = true
			own = append(own, e)
		}
	}
	return own, nil
}

// yErr is an *Error at node n.
func (c *converter) yErr(n *yaml.Node, path, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	line := 0
	if n != nil {
		line = n.Line
	}
	return &Error{File: c.path, Line: line, Msg: msg}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// describeNode says what a node is, for errors.
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%s %q", strings.TrimPrefix(n.Tag, "!!"), shorten(n.Value))
	}
	return "nothing"
}

func shorten(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

// yString reads a scalar as a string (process-compose's string fields take
// any scalar); null is "".
func (c *converter) yString(path string, n *yaml.Node) (string, error) {
	n = resolve(n)
	if n == nil || isNull(n) {
		return "", nil
	}
	if n.Kind != yaml.ScalarNode {
		return "", c.yErr(n, path, "expected a string, got %s", describeNode(n))
	}
	if strings.ContainsRune(n.Value, 0) {
		return "", c.yErr(n, path, "holds a NUL character")
	}
	return n.Value, nil
}

// yInt reads an integer.
func (c *converter) yInt(path string, n *yaml.Node) (int, error) {
	n = resolve(n)
	if n == nil || isNull(n) {
		return 0, nil
	}
	var v int
	if n.Kind != yaml.ScalarNode || n.Decode(&v) != nil || v < -1<<31 || v > 1<<31-1 {
		return 0, c.yErr(n, path, "expected an integer, got %s", describeNode(n))
	}
	return v, nil
}

// yBool reads a boolean.
func (c *converter) yBool(path string, n *yaml.Node) (bool, error) {
	n = resolve(n)
	if n == nil || isNull(n) {
		return false, nil
	}
	var v bool
	if n.Kind != yaml.ScalarNode || n.Decode(&v) != nil {
		return false, c.yErr(n, path, "expected a boolean, got %s", describeNode(n))
	}
	return v, nil
}

// yStrings reads a list of scalars.
func (c *converter) yStrings(path string, n *yaml.Node) ([]string, error) {
	n = resolve(n)
	if n == nil || isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, c.yErr(n, path, "expected a list, got %s", describeNode(n))
	}
	out := make([]string, 0, len(n.Content))
	for i, e := range n.Content {
		s, err := c.yString(fmt.Sprintf("%s[%d]", path, i), e)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line ([0-9]+): (.*)$`)

// yamlError turns an error of the YAML parser into an *Error.
func (c *converter) yamlError(err error) error {
	msg := strings.TrimSpace(err.Error())
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: c.path, Line: line, Msg: m[2]}
	}
	return &Error{File: c.path, Msg: strings.TrimPrefix(msg, "yaml: ")}
}
