package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// levelTrace is the slog level nats-server trace lines would use. Tracing is
// never switched on by this package: traces carry message payloads (MiB of
// Arrow data) and protocol lines, which have no place in pdmflow's logs.
const levelTrace = slog.LevelDebug - 4

// serverLog implements server.Logger by forwarding to slog. It also keeps
// the first Fatalf: nats-server reports start-up failures (a port in use, a
// JetStream store it cannot open, ...) through Fatalf and then just returns
// from Start, so a Fatalf is how Start learns that the server will not come
// up. Fatalf never exits the process here, unlike nats-server's own logger.
type serverLog struct {
	log *slog.Logger

	once  sync.Once
	fatal chan struct{} // closed on the first Fatalf
	err   error         // the first Fatalf, set before fatal is closed
}

func newServerLog(log *slog.Logger) *serverLog {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &serverLog{log: log.With("component", "nats-server"), fatal: make(chan struct{})}
}

func (l *serverLog) emit(lvl slog.Level, format string, v []any) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, lvl) {
		return
	}
	l.log.Log(ctx, lvl, fmt.Sprintf(format, v...))
}

// debugEnabled reports whether debug lines would be written, so that the
// server is not asked to format lines that would be dropped.
func (l *serverLog) debugEnabled() bool {
	return l.log.Enabled(context.Background(), slog.LevelDebug)
}

func (l *serverLog) Noticef(format string, v ...any) { l.emit(slog.LevelInfo, format, v) }
func (l *serverLog) Warnf(format string, v ...any)   { l.emit(slog.LevelWarn, format, v) }
func (l *serverLog) Errorf(format string, v ...any)  { l.emit(slog.LevelError, format, v) }
func (l *serverLog) Debugf(format string, v ...any)  { l.emit(slog.LevelDebug, format, v) }
func (l *serverLog) Tracef(format string, v ...any)  { l.emit(levelTrace, format, v) }

func (l *serverLog) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg, "fatal", true)
	l.once.Do(func() {
		l.err = errors.New(msg)
		close(l.fatal)
	})
}

// fatalErr returns the first Fatalf, or nil.
func (l *serverLog) fatalErr() error {
	select {
	case <-l.fatal:
		return l.err
	default:
		return nil
	}
}
