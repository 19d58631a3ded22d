package lmclient

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // pure-Go SQLite driver "sqlite": no cgo in the release build
)

// diskLayer is the on-disk cache: one SQLite database in WAL mode, which
// several processes on one volume can read and write at once (SQLite's file
// locks serialise writers; busy_timeout makes them wait instead of failing).
// Entries are evicted least recently used first when their bytes exceed the
// limit. modernc.org/sqlite is a pure-Go translation of SQLite, so the
// binary stays CGO-free; bbolt was ruled out because it admits one process.
type diskLayer struct {
	db    *sql.DB
	limit int64
	// touchAfter is how stale an entry's recency must be before a hit
	// rewrites it: most hits then stay read-only, which keeps readers from
	// queueing on SQLite's single writer. Eviction order is exact to this
	// granularity.
	touchAfter time.Duration
}

// defaultTouchAfter is diskLayer.touchAfter outside tests.
const defaultTouchAfter = time.Minute

// entryOverhead approximates SQLite's per-row cost (row header, index entry)
// in the size accounting, so many tiny entries still count.
const entryOverhead = 64

// evictBatch is how many rows one eviction statement removes.
const evictBatch = 64

const diskSchema = `
CREATE TABLE IF NOT EXISTS entries (
	key      TEXT PRIMARY KEY,
	value    BLOB NOT NULL,
	size     INTEGER NOT NULL,
	accessed INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_accessed ON entries (accessed);
CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY CHECK (id = 1), total INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (id, total) VALUES (1, 0);
CREATE TRIGGER IF NOT EXISTS entries_ins AFTER INSERT ON entries
	BEGIN UPDATE meta SET total = total + NEW.size WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS entries_del AFTER DELETE ON entries
	BEGIN UPDATE meta SET total = total - OLD.size WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS entries_upd AFTER UPDATE OF size ON entries
	BEGIN UPDATE meta SET total = total - OLD.size + NEW.size WHERE id = 1; END;
`

func openDiskLayer(dir string, limit int64) (*diskLayer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create cache dir: %w", err)
	}
	path := filepath.Join(dir, diskFile)
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "auto_vacuum(INCREMENTAL)")
	q.Set("_txlock", "immediate") // take the write lock up front: no upgrade deadlocks
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open disk cache: %w", err)
	}
	if _, err := db.Exec(diskSchema); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("create disk cache schema: %w", err)
	}
	return &diskLayer{db: db, limit: limit, touchAfter: defaultTouchAfter}, nil
}

func (d *diskLayer) name() string { return "disk" }

func (d *diskLayer) get(ctx context.Context, key string) (entry, bool, error) {
	var b []byte
	var accessed int64
	err := d.db.QueryRowContext(ctx, `SELECT value, accessed FROM entries WHERE key = ?`, key).Scan(&b, &accessed)
	if errors.Is(err, sql.ErrNoRows) {
		return entry{}, false, nil
	}
	if err != nil {
		return entry{}, false, fmt.Errorf("read disk cache: %w", err)
	}
	e, err := decodeEntry(b)
	if err != nil {
		return entry{}, false, err
	}
	// Recency for eviction. A failure here only ages the entry.
	if now := time.Now().UnixNano(); now-accessed >= int64(d.touchAfter) {
		_, _ = d.db.ExecContext(ctx, `UPDATE entries SET accessed = ? WHERE key = ?`, now, key)
	}
	return e, true, nil
}

func (d *diskLayer) put(ctx context.Context, key string, e entry) error {
	b, err := e.encode()
	if err != nil {
		return err
	}
	size := int64(len(key) + len(b) + entryOverhead)
	if size > d.limit {
		return nil // larger than the whole cache: not stored, as diskcache would cull it at once
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin disk cache write: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `INSERT INTO entries (key, value, size, accessed) VALUES (?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, size = excluded.size, accessed = excluded.accessed`,
		key, b, size, time.Now().UnixNano()); err != nil {
		return fmt.Errorf("write disk cache: %w", err)
	}
	evicted, err := d.evict(ctx, tx)
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit disk cache write: %w", err)
	}
	if evicted {
		// Give freed pages back to the file system, a little at a time.
		_, _ = d.db.ExecContext(ctx, `PRAGMA incremental_vacuum(256)`)
	}
	return nil
}

// evict deletes the least recently used entries until the stored bytes fit
// in 90% of the limit (the slack keeps every put from evicting). It walks
// the recency index in batches, so it never scans the whole table.
func (d *diskLayer) evict(ctx context.Context, tx *sql.Tx) (bool, error) {
	var total int64
	if err := tx.QueryRowContext(ctx, `SELECT total FROM meta WHERE id = 1`).Scan(&total); err != nil {
		return false, fmt.Errorf("read disk cache size: %w", err)
	}
	if total <= d.limit {
		return false, nil
	}
	target := d.limit / 10 * 9
	for total > target {
		victims, err := oldest(ctx, tx, evictBatch)
		if err != nil {
			return false, err
		}
		if len(victims) == 0 {
			break
		}
		for _, v := range victims {
			if total <= target {
				break
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM entries WHERE key = ?`, v.key); err != nil {
				return false, fmt.Errorf("evict disk cache: %w", err)
			}
			total -= v.size
		}
	}
	return true, nil
}

type victim struct {
	key  string
	size int64
}

func oldest(ctx context.Context, tx *sql.Tx, n int) ([]victim, error) {
	rows, err := tx.QueryContext(ctx, `SELECT key, size FROM entries ORDER BY accessed ASC LIMIT ?`, n)
	if err != nil {
		return nil, fmt.Errorf("list disk cache entries: %w", err)
	}
	defer rows.Close()
	var out []victim
	for rows.Next() {
		var v victim
		if err := rows.Scan(&v.key, &v.size); err != nil {
			return nil, fmt.Errorf("list disk cache entries: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// size is the bytes of stored entries, as the limit counts them.
func (d *diskLayer) size(ctx context.Context) (int64, error) {
	var total int64
	err := d.db.QueryRowContext(ctx, `SELECT total FROM meta WHERE id = 1`).Scan(&total)
	return total, err
}

func (d *diskLayer) close() error { return d.db.Close() }
