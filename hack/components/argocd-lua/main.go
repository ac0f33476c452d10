// Command argocd-health runs our Argo CD health checks through Argo CD's own Lua engine
// (github.com/argoproj/argo-cd/v3/util/lua, gopher-lua), the way the application controller
// does for a health.lua configured as a resource customization: the script as the
// ResourceOverride of its group/kind, looked up with GetHealthScript, run by ExecuteHealthLua.
//
// Usage: argocd-health DIR, where DIR holds GROUP/KIND/{health.lua,health_test.yaml,testdata/}
// (argocd/resource_customizations). Each case of each health_test.yaml (the format of Argo CD's
// own resource_customizations) prints one JSON line {kind, inputPath, want, got, error}; the exit
// status is 1 if any case differs or fails, 2 on bad usage.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	appv1 "github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	"github.com/argoproj/argo-cd/v3/util/lua"
	"github.com/argoproj/gitops-engine/pkg/health"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

type testFile struct {
	Tests []struct {
		InputPath    string              `json:"inputPath"`
		HealthStatus health.HealthStatus `json:"healthStatus"`
	} `json:"tests"`
}

type result struct {
	Kind      string               `json:"kind"`
	InputPath string               `json:"inputPath"`
	Want      health.HealthStatus  `json:"want"`
	Got       *health.HealthStatus `json:"got,omitempty"`
	Error     string               `json:"error,omitempty"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health DIR")
		os.Exit(2)
	}
	scripts, err := filepath.Glob(filepath.Join(os.Args[1], "*", "*", "health.lua"))
	if err != nil || len(scripts) == 0 {
		fmt.Fprintf(os.Stderr, "no GROUP/KIND/health.lua under %s\n", os.Args[1])
		os.Exit(2)
	}
	failed := false
	out := json.NewEncoder(os.Stdout)
	for _, script := range scripts {
		for _, r := range runKind(filepath.Dir(script)) {
			if r.Error != "" || r.Got == nil || *r.Got != r.Want {
				failed = true
			}
			if err := out.Encode(r); err != nil {
				panic(err)
			}
		}
	}
	if failed {
		os.Exit(1)
	}
}

func runKind(dir string) []result {
	kind := filepath.Base(filepath.Dir(dir)) + "/" + filepath.Base(dir)
	fail := func(err error) []result { return []result{{Kind: kind, Error: err.Error()}} }
	script, err := os.ReadFile(filepath.Join(dir, "health.lua"))
	if err != nil {
		return fail(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
	if err != nil {
		return fail(err)
	}
	var tests testFile
	if err := yaml.Unmarshal(raw, &tests); err != nil {
		return fail(err)
	}
	if len(tests.Tests) == 0 {
		return fail(fmt.Errorf("%s/health_test.yaml has no tests", dir))
	}
	// What argocd-cm's resource.customizations.health.<group>_<kind> becomes in the controller.
	vm := lua.VM{ResourceOverrides: map[string]appv1.ResourceOverride{
		kind: {HealthLua: string(script)},
	}}
	var results []result
	for _, tc := range tests.Tests {
		r := result{Kind: kind, InputPath: tc.InputPath, Want: tc.HealthStatus}
		got, err := evaluate(vm, filepath.Join(dir, tc.InputPath))
		if err != nil {
			r.Error = err.Error()
		} else {
			r.Got = got
		}
		results = append(results, r)
	}
	return results
}

func evaluate(vm lua.VM, path string) (*health.HealthStatus, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(raw, &obj.Object); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	script, useOpenLibs, err := vm.GetHealthScript(obj)
	if err != nil {
		return nil, err
	}
	if script == "" {
		return nil, fmt.Errorf("%s: no health script for %s", path, obj.GroupVersionKind())
	}
	vm.UseOpenLibs = useOpenLibs
	return vm.ExecuteHealthLua(obj, script)
}
