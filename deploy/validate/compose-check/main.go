// compose-check loads Compose files the way `docker compose config` does (compose-go: the
// Compose specification's schema, interpolation, merging, normalisation), without a Docker
// engine, and checks what the loader leaves to build and run time: each build context and
// Dockerfile exists, and each bind-mounted host path exists.
//
//	compose-check [-print] FILE...
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

func check(path string, print bool) []string {
	opts, err := cli.NewProjectOptions([]string{path},
		cli.WithWorkingDirectory(filepath.Dir(path)), cli.WithOsEnv, cli.WithDotEnv)
	if err != nil {
		return []string{err.Error()}
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		return []string{err.Error()}
	}
	if print {
		out, _ := project.MarshalYAML()
		os.Stdout.Write(out)
	}
	var problems []string
	names := project.ServiceNames()
	sort.Strings(names)
	for _, name := range names {
		svc := project.Services[name]
		if svc.Build != nil {
			if st, err := os.Stat(svc.Build.Context); err != nil || !st.IsDir() {
				problems = append(problems, fmt.Sprintf("service %s: build context %s is not a directory", name, svc.Build.Context))
			} else if svc.Build.Dockerfile != "" && svc.Build.DockerfileInline == "" {
				dockerfile := svc.Build.Dockerfile
				if !filepath.IsAbs(dockerfile) {
					dockerfile = filepath.Join(svc.Build.Context, dockerfile)
				}
				if _, err := os.Stat(dockerfile); err != nil {
					problems = append(problems, fmt.Sprintf("service %s: no Dockerfile at %s", name, dockerfile))
				}
			}
		}
		for _, vol := range svc.Volumes {
			if vol.Type == types.VolumeTypeBind {
				if _, err := os.Stat(vol.Source); err != nil {
					problems = append(problems, fmt.Sprintf("service %s: bind mount source %s does not exist", name, vol.Source))
				}
			}
		}
	}
	return problems
}

func main() {
	print := flag.Bool("print", false, "print each normalised project")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: compose-check [-print] FILE...")
		os.Exit(2)
	}
	failed := false
	for _, path := range flag.Args() {
		abs, _ := filepath.Abs(path)
		problems := check(abs, *print)
		for _, p := range problems {
			fmt.Printf("%s: %s\n", path, p)
		}
		failed = failed || len(problems) > 0
	}
	if failed {
		os.Exit(1)
	}
}
