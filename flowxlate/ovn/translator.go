package ovn

import "log/slog"

// Options configures a Translator.
type Options struct {
	Logger *slog.Logger
}

// Stats counts what a Translator holds.
type Stats struct {
	LogicalFlows int // Logical_Flow rows seen
	Rules        int // pipeline rules built (after datapath-group expansion)
	Skipped      int // logical flows skipped because they do not parse or are unsupported
}

// Translator turns Southbound contents into the logical pipeline.
// (Stub: being written.)
type Translator struct {
	opts  Options
	stats Stats
}

// NewTranslator returns an empty Translator.
func NewTranslator(opts Options) *Translator { return &Translator{opts: opts} }

// Load replaces the Translator's contents with sb.
func (t *Translator) Load(sb *Southbound) error {
	t.stats = Stats{LogicalFlows: len(sb.LogicalFlows)}
	return nil
}

// Stats reports counts.
func (t *Translator) Stats() Stats { return t.stats }
