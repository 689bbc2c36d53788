package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
	"github.com/gracefulgo/walkthrough/internal/proc"
)

func TestMain(m *testing.M) { demotest.Main(m, main) }

// The web role keeps every lesson of step 05: the database changes nothing
// about how HTTP drains. Each run gets a database of its own.
func TestScenarios(t *testing.T) {
	t.Parallel()
	demotest.Suite{Args: func(t *testing.T) []string { return []string{"web", "-database", sqliteDB(t)} }}.Run(t)
}

// TestEmailsStatuses: bad input gets a 4xx with a one-line reason and
// queues nothing; GET /emails/{id} knows only the jobs there are.
func TestEmailsStatuses(t *testing.T) {
	t.Parallel()
	database := sqliteDB(t)
	web := startWeb(t, database)
	for _, c := range []struct {
		name, body string
		status     int
	}{
		{"malformed JSON", `{"to": ["ann@example.com"`, http.StatusBadRequest},
		{"not an object", `["ann@example.com"]`, http.StatusBadRequest},
		{"two values", `{"to": ["ann@example.com"]} {}`, http.StatusBadRequest},
		{"an unknown field", `{"to": ["ann@example.com"], "cc": ["bob@example.com"]}`, http.StatusBadRequest},
		{"no recipients", `{"subject": "hi"}`, http.StatusBadRequest},
		{"empty list", `{"to": []}`, http.StatusBadRequest},
		{"bad address", `{"to": ["ann@example.com", "bob at example.com"]}`, http.StatusBadRequest},
		{"body over 1 MiB", `{"to": ["ann@example.com"], "body": "` + strings.Repeat("x", 1<<20) + `"}`, http.StatusRequestEntityTooLarge},
		{"more than 100 recipients", emailBody(recipients("many", 101)...), http.StatusRequestEntityTooLarge},
		{"a subject that is not UTF-8", "{\"to\": [\"ann@example.com\"], \"subject\": \"caf\xe9\"}", http.StatusBadRequest},
	} {
		r, _ := web.PostJSON("/emails", c.body)
		if r.Err != nil || r.Status != c.status || !oneLine(r.Body) {
			t.Errorf("%s: %v, want %d with a one-line reason", c.name, r, c.status)
		}
		if c.name == "a subject that is not UTF-8" && !strings.Contains(r.Body, "UTF-8") {
			t.Errorf("%s: %q does not say what is wrong", c.name, r.Body)
		}
		if c.name == "an unknown field" && !strings.Contains(r.Body, `"cc"`) {
			t.Errorf("%s: %q does not name the field", c.name, r.Body)
		}
	}
	if r := web.Get("/emails"); r.Status != http.StatusMethodNotAllowed || strings.TrimSpace(r.Body) != "Method Not Allowed" {
		t.Errorf("GET /emails = %v, want 405 Method Not Allowed", r)
	}
	if n := countJobs(t, database); n != 0 {
		t.Fatalf("refused requests queued %d jobs", n)
	}
	ids := accept(t, web, "ann@example.com")
	for path, status := range map[string]int{
		fmt.Sprintf("/emails/%d", ids[0]):   http.StatusOK,
		fmt.Sprintf("/emails/%d", ids[0]+1): http.StatusNotFound,
		"/emails/banana":                    http.StatusNotFound,
	} {
		if r := web.Get(path); r.Status != status {
			t.Errorf("GET %s = %v, want %d", path, r, status)
		}
	}
	// No worker runs: the job waits, as River calls it, available.
	if got := jobStatus(t, web, ids[0]); got.State != "available" || got.To != "ann@example.com" || got.Attempts != 0 {
		t.Errorf("GET /emails/%d = %+v, want ann@example.com available with 0 attempts", ids[0], got)
	}
}

// TestLateBodyIs408: a body that does not arrive within the server's
// ReadTimeout (-read-timeout) gets 408 Request Timeout, never an implicit
// 200, and queues nothing.
func TestLateBodyIs408(t *testing.T) {
	t.Parallel()
	const readTimeout = 300 * time.Millisecond
	database := sqliteDB(t)
	web := demotest.Start(t, "web", "-database", database, "-read-timeout", readTimeout.String())
	conn, err := net.Dial("tcp", web.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Part of the body, and then nothing: it can only end at the timeout.
	fmt.Fprint(conn, "POST /emails HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"to\": [")
	conn.SetReadDeadline(time.Now().Add(readTimeout + demotest.EventTimeout))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a late body: %v", err)
	}
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("a late body got %s, want 408", resp.Status)
	}
	if n := countJobs(t, database); n != 0 {
		t.Errorf("a late body queued %d jobs", n)
	}
}

// TestIdempotencyKey: the same request sent twice with the same
// Idempotency-Key gets the same job ids, and one set of jobs is queued;
// the key used for another request is refused; without a key, every
// request is new.
func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	database := sqliteDB(t)
	web := startWeb(t, database)
	body := emailBody("ann@example.com", "bob@example.com")
	first := postWithKey(t, web, "retry-1", body)
	again := postWithKey(t, web, "retry-1", body)
	if first.Status != http.StatusAccepted || again.Status != http.StatusAccepted || first.Body != again.Body {
		t.Errorf("the same request twice with one key: %v then %v, want the same 202", first, again)
	}
	if n := countJobs(t, database); n != 2 {
		t.Errorf("%d jobs queued, want 2: one set for the two tries", n)
	}
	if r := postWithKey(t, web, "retry-1", emailBody("cy@example.com")); r.Status != http.StatusUnprocessableEntity || !oneLine(r.Body) {
		t.Errorf("the key of another request: %v, want 422 with a one-line reason", r)
	}
	if r := postWithKey(t, web, strings.Repeat("k", 256), body); r.Status != http.StatusBadRequest {
		t.Errorf("a 256-byte key: %v, want 400", r)
	}
	a, b := accept(t, web, "dee@example.com"), accept(t, web, "dee@example.com")
	if a[0] == b[0] {
		t.Errorf("two requests without a key got the same id %d", a[0])
	}
	if n := countJobs(t, database); n != 4 {
		t.Errorf("%d jobs queued, want 4", n)
	}
}

// TestBadDatabase: a database that cannot be opened stops either role at
// once, with a message naming it, and exit status 1.
func TestBadDatabase(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	database := filepath.Join(file, "jobs.db") // a file cannot hold a folder
	for _, role := range []string{"web", "worker"} {
		t.Run(role, func(t *testing.T) {
			t.Parallel()
			addr := ""
			if role == "web" {
				addr = demotest.FreeAddr(t)
			}
			p := demotest.StartAt(t, addr, role, "-database", database)
			exit := p.WaitExit()
			line, ok := p.Logged("cannot open database")
			if exit.Code != 1 || !ok || line.Attr("database") != database {
				t.Errorf("%s, output %q; want exit status 1 and msg=\"cannot open database\" naming %s", exit, p.Output(), database)
			}
		})
	}
}

// TestBadCommandLine: no role, an unknown role, a word left over or a bad
// flag value stops the program before it starts, with exit status 2 and a
// message saying what was wrong.
func TestBadCommandLine(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "Usage"},
		{[]string{"serve"}, `unknown role "serve"`},
		{[]string{"web", "extra"}, `"extra" is not a flag (flags start with -`},
		{[]string{"worker", "-workers", "2", "extra"}, `"extra" is not a flag (flags start with -`},
		{[]string{"web", "-shutdown-timeout", "0s"}, "-shutdown-timeout"},
		{[]string{"web", "-read-timeout", "0s"}, "-read-timeout"},
		{[]string{"worker", "-workers", "0"}, "-workers"},
		{[]string{"worker", "-send-time", "-1s"}, "-send-time"},
		{[]string{"worker", "-rescue-after", "0s"}, "-rescue-after"},
		{[]string{"worker", "-send-time", "30s", "-rescue-after", "1m"}, "half of -rescue-after"},
		{[]string{"worker", "-addr", ":8080"}, "-addr"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			t.Parallel()
			args := append(c.args, "-database", sqliteDB(t))
			if c.args == nil {
				args = nil
			}
			p := demotest.StartAt(t, "", args...)
			exit := p.WaitExit()
			if out := p.Output(); exit.Code != 2 || !strings.Contains(out, c.want) {
				t.Errorf("%s, output %q; want exit status 2 and a message with %q", exit, out, c.want)
			}
		})
	}
}

// TestHelp: -h, -help and --help print the usage and exit 0, as the flag
// package does for a program's flags, and so do they after a role.
func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-h"}, {"-help"}, {"--help"}, {"web", "-h"}, {"worker", "--help"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			p := demotest.StartAt(t, "", args...)
			exit := p.WaitExit()
			if out := p.Output(); exit.Code != 0 || !strings.Contains(out, "Usage: 09-worker-process") || strings.Contains(out, "unknown role") {
				t.Errorf("%s, output %q; want exit status 0 and the usage", exit, out)
			}
		})
	}
}

// TestDatabaseNotServed: a -database that names neither a SQLite file nor
// a PostgreSQL URL stops either role before it starts, with exit status 2
// and one line saying what -database takes; it creates no file, and the
// line never repeats a password.
func TestDatabaseNotServed(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ database, want string }{
		{"mysql://localhost/jobs", "a mysql: URL is not a database this step serves"},
		{"mysql://ann:hunter22@localhost/jobs", "a mysql: URL"},
		{"sqlite:jobs.db", "a sqlite: URL"},
		{"host=localhost dbname=jobs", "keyword/value connection string"},
		{"host=localhost password=hunter22", "keyword/value connection string"},
		{"postgres:localhost/jobs", "starts with postgres://"},
		{"file:jobs.db?mode=ro", "without ?options"},
		{"file://elsewhere/jobs.db", "on this machine"},
		{"", "-database is empty"},
	} {
		for _, role := range []string{"web", "worker"} {
			t.Run(role+" "+c.database, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				args := []string{role, "-database", c.database}
				if role == "web" {
					args = append(args, "-addr", "127.0.0.1:0")
				}
				cmd := demotest.Command(args...)
				cmd.Dir = dir // a relative path would be made here
				p, err := proc.Start("", cmd)
				if err != nil {
					t.Fatal(err)
				}
				defer p.Kill()
				exit, ok := p.AwaitExit(demotest.EventTimeout)
				out := p.Output()
				if !ok || exit.Code != 2 || !oneLine(out) || !strings.Contains(out, c.want) || !strings.Contains(out, "-database takes") {
					t.Errorf("%s, output %q; want exit status 2 and one line with %q", exit, out, c.want)
				}
				if strings.Contains(out, "hunter22") {
					t.Errorf("the output shows the password: %q", out)
				}
				if files, _ := os.ReadDir(dir); len(files) > 0 {
					t.Errorf("-database %q created %s", c.database, files[0].Name())
				}
			})
		}
	}
}

// TestFileURL: -database file:PATH is the SQLite file at PATH, not a
// folder named "file:".
func TestFileURL(t *testing.T) {
	t.Parallel()
	path := sqliteDB(t)
	web := startWeb(t, "file:"+path)
	accept(t, web, "file@example.com")
	if n := countJobs(t, path); n != 1 {
		t.Errorf("%s holds %d jobs, want the one posted through file:%s", path, n, path)
	}
	if _, err := os.Stat("file:"); err == nil {
		t.Error(`-database file:... made a folder "file:"`)
	}
}

// TestDatabasePasswordNotLogged: when PostgreSQL cannot be reached, or the
// URL cannot be parsed, the error names the database without its
// passwords, in the URL's user info or in its query, in every line.
func TestDatabasePasswordNotLogged(t *testing.T) {
	t.Parallel()
	closed := demotest.FreeAddr(t) // nothing listens there
	for name, database := range map[string]string{
		"unreachable":   "postgres://ann:s3cret-pw@" + closed + "/jobs?sslmode=disable&sslpassword=other-s3cret",
		"escaped":       "postgresql://ann:s3cret%2Dpw@" + closed + "/jobs?password=other%2Ds3cret&sslmode=disable",
		"cannot parse":  "postgres://ann:s3cret-pw@127.0.0.1:notaport/jobs",
		"bad parameter": "postgres://ann:s3cret-pw@" + closed + "/jobs?sslmode=banana",
	} {
		for _, role := range []string{"web", "worker"} {
			t.Run(name+" "+role, func(t *testing.T) {
				t.Parallel()
				addr := ""
				if role == "web" {
					addr = demotest.FreeAddr(t)
				}
				p := demotest.StartAt(t, addr, role, "-database", database)
				exit := p.WaitExit()
				out := p.Output()
				line, ok := p.Logged("cannot open database")
				if exit.Code != 1 || !ok || !strings.Contains(line.Attr("database"), "ann:xxxxx@") {
					t.Errorf("%s, output %q; want exit status 1 and msg=\"cannot open database\" naming ann:xxxxx@", exit, out)
				}
				for _, secret := range []string{"s3cret-pw", "s3cret%2Dpw", "other-s3cret", "other%2Ds3cret"} {
					if strings.Contains(out, secret) {
						t.Errorf("the output shows the password %s: %q", secret, out)
					}
				}
			})
		}
	}
}

// sqliteDB returns the path of a new SQLite database for one test, with
// the schema in place: a copy of schemaTemplate.
func sqliteDB(t testing.TB) string {
	t.Helper()
	template, err := schemaTemplate()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jobs.db")
	if _, err := template.Exec(`VACUUM INTO $1`, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// schemaTemplate is a database in memory with the schema the programs
// create. Creating it takes a second of CPU under the race detector, so
// the tests create it once and copy it, rather than have each of the
// dozens of programs they start create its own at the same time. (The
// programs still run the migrator, which finds nothing to do, and
// TestBadDatabase and the PostgreSQL tests start on an empty database.)
var schemaTemplate = sync.OnceValues(func() (*sql.DB, error) {
	db, _, _, err := openDatabase(context.Background(), ":memory:")
	return db, err
})

// postgresDB returns the URL of a new schema of its own on the PostgreSQL
// server that TEST_POSTGRES_URL names, dropped after the test. Without it,
// the test skips; on CI it fails.
func postgresDB(t testing.TB) string {
	base := os.Getenv("TEST_POSTGRES_URL")
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but TEST_POSTGRES_URL is not set: .ci/run sets it")
		}
		t.Skip("no PostgreSQL: run `sh .ci/postgres.sh` and set TEST_POSTGRES_URL to the URL it prints")
	}
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	schema := "test_" + strings.ToLower(rand.Text())
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("TEST_POSTGRES_URL=%s: %v", base, err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err != nil {
			t.Error(err)
			return
		}
		defer db.Close()
		if _, err := db.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Error(err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema) // River's tables and the step's go there
	u.RawQuery = q.Encode()
	return u.String()
}

// onEachDatabase runs test on SQLite and on PostgreSQL, in parallel.
func onEachDatabase(t *testing.T, test func(t *testing.T, database string)) {
	for name, database := range map[string]func(testing.TB) string{"sqlite": sqliteDB, "postgres": postgresDB} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, database(t))
		})
	}
}

func startWeb(t *testing.T, database string) *demotest.Process {
	t.Helper()
	return demotest.Start(t, "web", "-database", database)
}

// startWorker starts the worker role, which serves no HTTP, and returns
// once it takes jobs.
func startWorker(t *testing.T, database string, args ...string) *demotest.Process {
	t.Helper()
	p := demotest.StartAt(t, "", append([]string{"worker", "-database", database}, args...)...)
	p.WaitLog("worker started")
	return p
}

// recipients returns n addresses, unique to the test that names them.
func recipients(test string, n int) []string {
	to := make([]string, n)
	for i := range to {
		to[i] = fmt.Sprintf("%s-%d@example.com", test, i)
	}
	return to
}

func emailBody(to ...string) string {
	body, _ := json.Marshal(emailRequest{To: to, Subject: "Hello", Body: "Hi there."})
	return string(body)
}

// accept posts an email to the recipients, expects a 202, and returns the
// job ids it got.
func accept(t *testing.T, web *demotest.Process, to ...string) []int64 {
	t.Helper()
	r, _ := web.PostJSON("/emails", emailBody(to...))
	var answer struct{ IDs []int64 }
	if r.Err != nil || r.Status != http.StatusAccepted || json.Unmarshal([]byte(r.Body), &answer) != nil || len(answer.IDs) != len(to) {
		t.Fatalf("POST /emails to %d recipients: %v, want 202 with %d ids", len(to), r, len(to))
	}
	return answer.IDs
}

func postWithKey(t *testing.T, web *demotest.Process, key, body string) demotest.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+web.Addr+"/emails", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return demotest.Response{Err: err}
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	return demotest.Response{Status: resp.StatusCode, Body: string(answer), Err: err}
}

func jobStatus(t *testing.T, web *demotest.Process, id int64) emailStatus {
	t.Helper()
	r := web.Get(fmt.Sprintf("/emails/%d", id))
	var status emailStatus
	if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), &status) != nil {
		t.Fatalf("GET /emails/%d = %v", id, r)
	}
	return status
}

// openTestDatabase opens the database the programs share, as they do.
func openTestDatabase(t *testing.T, database string) *sql.DB {
	t.Helper()
	db, _, closeDB, err := openDatabase(context.Background(), database)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeDB)
	return db
}

func countJobs(t *testing.T, database string) int {
	t.Helper()
	var n int
	if err := openTestDatabase(t, database).QueryRow(`SELECT count(*) FROM river_job`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// sentIDs returns the job id of each row of the sent table.
func sentIDs(t *testing.T, database string) []int64 {
	t.Helper()
	rows, err := openTestDatabase(t, database).Query(`SELECT job_id FROM sent ORDER BY job_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// awaitSent waits until the sent table has n rows. The timeout only catches
// a hang: how fast the rows come is the lab's business, not this test's.
func awaitSent(t *testing.T, database string, n int, timeout time.Duration) {
	t.Helper()
	db := openTestDatabase(t, database)
	deadline := time.Now().Add(timeout)
	for {
		var count int
		if err := db.QueryRow(`SELECT count(*) FROM sent`).Scan(&count); err != nil {
			t.Fatal(err)
		}
		if count >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d emails sent within %s: a hang, not a slow machine", count, n, timeout)
		}
		time.Sleep(20 * time.Millisecond) // a poll of the database, not a wait for time to pass
	}
}

// checkOnce fails unless sent holds each accepted id exactly once, and
// nothing else, and no worker logged an email as sent twice.
func checkOnce(t *testing.T, accepted, sent []int64, workers ...*demotest.Process) {
	t.Helper()
	want := slices.Sorted(slices.Values(accepted))
	if got := slices.Sorted(slices.Values(sent)); !slices.Equal(got, want) {
		t.Errorf("sent holds\n%v\nwant each of\n%v\nexactly once", got, want)
	}
	logged := map[string]int{}
	for _, w := range workers {
		for _, l := range w.Lines() {
			if l.Msg() == "email sent" {
				logged[l.Attr("id")]++
			}
		}
	}
	for id, n := range logged {
		if n > 1 {
			t.Errorf("job %s was logged as sent %d times", id, n)
		}
	}
}

func oneLine(s string) bool {
	s = strings.TrimSpace(s)
	return s != "" && !strings.Contains(s, "\n")
}
