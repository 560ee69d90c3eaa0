// Package unixctl serves and calls control commands over a unix socket
// with Open vSwitch's unixctl protocol (JSON-RPC 1.0: a request names the
// command as its method and passes its arguments as strings; the reply's
// result or error is text). So `ovs-appctl -t SOCKET COMMAND ARGS` works
// against ovsbpfd as against ovs-vswitchd, and ovsbpfctl uses the same.
package unixctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// Handler runs one command and returns its text output, or an error whose
// text the caller sees.
type Handler func(args []string) (string, error)

type command struct {
	usage   string
	minArgs int
	maxArgs int
	run     Handler
}

// Server answers commands on a unix socket.
type Server struct {
	path string
	log  *slog.Logger
	ln   net.Listener

	mu       sync.Mutex
	commands map[string]command
}

// Listen creates the socket at path (replacing a stale one) and registers
// the built-in list-commands.
func Listen(path string, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing stale control socket %s: %w", path, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("creating control socket: %w", err)
	}
	s := &Server{path: path, log: log, ln: ln, commands: map[string]command{}}
	s.Register("list-commands", "", 0, 0, func([]string) (string, error) { return s.list(), nil })
	return s, nil
}

// Register adds a command taking minArgs..maxArgs arguments; usage
// describes them for list-commands.
func (s *Server) Register(name, usage string, minArgs, maxArgs int, h Handler) {
	s.mu.Lock()
	s.commands[name] = command{usage: usage, minArgs: minArgs, maxArgs: maxArgs, run: h}
	s.mu.Unlock()
}

func (s *Server) list() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.commands))
	for n := range s.commands {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("The available commands are:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %-24s%s\n", n, s.commands[n].usage)
	}
	return b.String()
}

// Serve answers connections until ctx ends, then removes the socket.
func (s *Server) Serve(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		s.ln.Close()
	}()
	defer os.Remove(s.path)
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accepting on %s: %w", s.path, err)
		}
		go s.serveConn(conn)
	}
}

type request struct {
	ID     any               `json:"id"`
	Method string            `json:"method"`
	Params []json.RawMessage `json:"params"`
}

type reply struct {
	ID     any     `json:"id"`
	Result *string `json:"result"`
	Error  *string `json:"error"`
}

func (s *Server) serveConn(conn net.Conn) {
	defer conn.Close()
	dec := json.NewDecoder(conn)
	enc := json.NewEncoder(conn)
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			return // closed, or not JSON-RPC: nothing to answer
		}
		if req.Method == "" {
			continue // a notification or a reply: ignore
		}
		out, err := s.run(req)
		r := reply{ID: req.ID}
		if err != nil {
			e := err.Error()
			r.Error = &e
		} else {
			r.Result = &out
		}
		if err := enc.Encode(r); err != nil {
			return
		}
	}
}

func (s *Server) run(req request) (string, error) {
	s.mu.Lock()
	cmd, ok := s.commands[req.Method]
	s.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("%q is not a valid command (use \"list-commands\" to see a list of valid commands)", req.Method)
	}
	args := make([]string, 0, len(req.Params))
	for _, p := range req.Params {
		var a string
		if err := json.Unmarshal(p, &a); err != nil {
			return "", fmt.Errorf("command arguments must be strings")
		}
		args = append(args, a)
	}
	if len(args) < cmd.minArgs || len(args) > cmd.maxArgs {
		return "", fmt.Errorf("%q command takes at least %d arguments and at most %d (usage: %s %s)",
			req.Method, cmd.minArgs, cmd.maxArgs, req.Method, cmd.usage)
	}
	start := time.Now()
	out, err := cmd.run(args)
	s.log.Debug("control command", "command", req.Method, "args", args, "took", time.Since(start), "err", err)
	return out, err
}

// Call runs a command on the server at path and returns its output. An
// error from the command comes back as a *CommandError.
func Call(ctx context.Context, path, command string, args ...string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return "", fmt.Errorf("connecting to %s (is ovsbpfd running?): %w", path, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if args == nil {
		args = []string{}
	}
	if err := json.NewEncoder(conn).Encode(map[string]any{"id": 0, "method": command, "params": args}); err != nil {
		return "", fmt.Errorf("sending %s to %s: %w", command, path, err)
	}
	var r reply
	if err := json.NewDecoder(conn).Decode(&r); err != nil {
		return "", fmt.Errorf("reading the reply to %s from %s: %w", command, path, err)
	}
	if r.Error != nil {
		return "", &CommandError{Command: command, Text: *r.Error}
	}
	if r.Result == nil {
		return "", nil
	}
	return *r.Result, nil
}

// CommandError is a command's own failure, as the server reported it.
type CommandError struct {
	Command string
	Text    string
}

func (e *CommandError) Error() string { return e.Text }
