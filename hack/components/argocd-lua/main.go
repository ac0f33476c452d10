// Command argocd-lua-health runs Argo CD's own Lua engine (github.com/argoproj/argo-cd/v3's
// util/lua, gopher-lua underneath, exactly as the application controller calls it) on every
// health.lua under a resource_customizations folder, against each case of the health_test.yaml
// beside it, the way Argo CD's TestLuaHealthScript does. A script that works in another Lua
// (lupa, in tests/unit/test_argocd_health.py) but not in Argo CD's fails here.
//
//	argocd-lua-health [-open-libs] DIR
//
// Prints one line per case and a closing "N passed, N failed"; exits 1 on any failure.
package main

import (
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"

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

func main() {
	// A customization from argocd-cm runs without the open libraries unless it sets
	// useOpenLibs; ours do not, so that is the default here.
	openLibs := flag.Bool("open-libs", false, "run with Lua's open libraries (useOpenLibs: true)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: argocd-lua-health [-open-libs] DIR")
		os.Exit(2)
	}
	passed, failed := 0, 0
	err := filepath.WalkDir(flag.Arg(0), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || d.Name() != "health.lua" {
			return nil
		}
		dir := filepath.Dir(path)
		script, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		raw, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
		if err != nil {
			return fmt.Errorf("%s has no health_test.yaml: %w", dir, err)
		}
		var cases testFile
		if err := yaml.Unmarshal(raw, &cases); err != nil {
			return fmt.Errorf("%s/health_test.yaml: %w", dir, err)
		}
		if len(cases.Tests) == 0 {
			return fmt.Errorf("%s/health_test.yaml has no tests", dir)
		}
		for _, c := range cases.Tests {
			name := filepath.Join(dir, c.InputPath)
			got, err := run(name, string(script), *openLibs)
			switch {
			case err != nil:
				failed++
				fmt.Printf("FAIL %s: %v\n", name, err)
			case !reflect.DeepEqual(*got, c.HealthStatus):
				failed++
				fmt.Printf("FAIL %s: got %+v, want %+v\n", name, *got, c.HealthStatus)
			default:
				passed++
				fmt.Printf("ok   %s: %s\n", name, got.Status)
			}
		}
		return nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 || passed == 0 {
		os.Exit(1)
	}
}

func run(path, script string, openLibs bool) (*health.HealthStatus, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	obj := map[string]any{}
	if err := yaml.Unmarshal(raw, &obj); err != nil {
		return nil, err
	}
	vm := lua.VM{UseOpenLibs: openLibs}
	return vm.ExecuteHealthLua(&unstructured.Unstructured{Object: obj}, script)
}
