// Command testreport reads `go test -json` output on stdin, prints the
// output of failed tests and a summary, and exits non-zero if any test
// failed or was skipped: in CI every privileged and integration test must
// run, so a skip is a failure.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

func main() {
	var (
		outputs     = map[string]*strings.Builder{} // by package/test
		passed      int
		failed      []string
		skipped     []string
		buildFailed []string
	)
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil {
			// Not an event: a build error or stray output. Show it.
			fmt.Println(string(line))
			continue
		}
		id := e.Package
		if e.Test != "" {
			id += "." + e.Test
		}
		switch e.Action {
		case "output":
			b := outputs[id]
			if b == nil {
				b = &strings.Builder{}
				outputs[id] = b
			}
			b.WriteString(e.Output)
			if e.Test == "" && strings.Contains(e.Output, "[build failed]") {
				buildFailed = append(buildFailed, e.Package)
			}
		case "build-output":
			fmt.Print(e.Output)
		case "build-fail":
			buildFailed = append(buildFailed, e.Package)
		case "pass":
			if e.Test != "" {
				passed++
			}
			delete(outputs, id)
		case "fail":
			if e.Test != "" || outputs[id] != nil {
				failed = append(failed, id)
				if b := outputs[id]; b != nil {
					fmt.Printf("--- FAIL %s (%.1fs)\n%s\n", id, e.Elapsed, b.String())
				}
			}
		case "skip":
			if e.Test != "" {
				skipped = append(skipped, id)
				if b := outputs[id]; b != nil {
					fmt.Printf("--- SKIP %s\n%s\n", id, b.String())
				}
			}
			delete(outputs, id)
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "testreport: reading go test output:", err)
		os.Exit(2)
	}
	sort.Strings(failed)
	sort.Strings(skipped)
	fmt.Printf("\n%d passed, %d failed, %d skipped\n", passed, len(failed), len(skipped))
	for _, s := range skipped {
		fmt.Println("skipped (not allowed):", s)
	}
	for _, p := range buildFailed {
		fmt.Println("build failed:", p)
	}
	for _, f := range failed {
		fmt.Println("failed:", f)
	}
	if len(failed) > 0 || len(skipped) > 0 || len(buildFailed) > 0 {
		os.Exit(1)
	}
}
