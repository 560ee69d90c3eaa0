//go:build !race

package chassis

// raceBuild says whether this test binary, and so the binaries it builds
// and runs, was built with -race (see race_test.go).
var raceBuild = false
