//go:build race

package chassis

// This test binary was built with -race: build ovsbpfd and ovsbpfctl with
// it too, so the daemon's concurrent parts (handlers, revalidator,
// Southbound monitor, control socket) run under the race detector while the
// tests drive real traffic and database changes through them.
var raceBuild = true
