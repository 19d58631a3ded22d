package config

import (
	"reflect"
	"strings"
)

// variable is one environment variable of Config: its name, the group it
// belongs to (the Config field holding it) and where its value lives.
type variable struct {
	name  string
	group string
	index []int // reflect field index path from Config
}

// variables lists every variable Config reads, in declaration order. It is
// derived from the env tags, so a field added to Config is parsed, printed
// and documented by `qa config` without a second list to keep in step.
func variables() []variable {
	var vars []variable
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		sec := t.Field(i)
		if !sec.IsExported() || sec.Type.Kind() != reflect.Struct {
			continue
		}
		for j := range sec.Type.NumField() {
			f := sec.Type.Field(j)
			name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
			if name == "" || name == "-" {
				continue
			}
			vars = append(vars, variable{name: name, group: sec.Name, index: []int{i, j}})
		}
	}
	return vars
}

// Variables returns the names of every variable Config reads, in the order
// of the Config fields.
func Variables() []string {
	vars := variables()
	names := make([]string, len(vars))
	for i, v := range vars {
		names[i] = v.name
	}
	return names
}
