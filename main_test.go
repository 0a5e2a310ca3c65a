package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crs-tool/crs/internal/e2e"

	"github.com/crs-tool/crs/internal/redistest"
)

// TestREADMEPipeline runs the commands at the top of the README.
func TestREADMEPipeline(t *testing.T) {
	for _, tool := range []string{"zstd", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed", tool)
			}
			t.Skipf("%s is not installed", tool)
		}
	}
	src, dst := redistest.Start(t), redistest.Start(t)
	fill(t, src)
	dir := t.TempDir()
	out, code := e2e.Sh(t, dir, `crsdump -u `+src.URL+` > crs.jsonl.zst && crsload -u `+dst.URL+` < crs.jsonl.zst`)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if !strings.Contains(out, "crsdump: dumped 26 keys") || !strings.Contains(out, "crsload: loaded") {
		t.Errorf("summaries:\n%s", out)
	}
	assertNoDiffExceptSoon(t, src, dst)

	out, code = e2e.Sh(t, dir, `zstd -dc crs.jsonl.zst | jq -r 'select(.type=="hash") | .key' | sort`)
	// hash:binary and hash:small hold bytes that are not UTF-8, so their
	// records (keys included) are base64.
	if want := "aGFzaDpiaW5hcnk=\naGFzaDpzbWFsbA==\ndb15:hash\nhash:big\n"; code != 0 || out != want {
		t.Errorf("jq recipe: exit %d, got %q, want %q", code, out, want)
	}

	// The same through "crs dump" / "crs load", a file argument, plain
	// output, and the password from REDISCLI_AUTH on a server that wants it.
	auth := redistest.Start(t, "--requirepass", "s3cret")
	out, code = e2e.Sh(t, dir, `crs dump -h 127.0.0.1 -p `+port(src.Addr)+` --compress=none -o plain.jsonl && crs load -p `+port(auth.Addr)+` plain.jsonl`, "REDISCLI_AUTH=s3cret")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if strings.Contains(out, "s3cret") {
		t.Errorf("password printed:\n%s", out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "plain.jsonl"))
	if err != nil || !strings.HasPrefix(string(b), `{"format":"crs","version":1,`) {
		t.Errorf("plain output starts %.60q (%v)", b, err)
	}
}

func port(addr string) string { return addr[strings.LastIndex(addr, ":")+1:] }

func TestExitCodes(t *testing.T) {
	src := redistest.Start(t)
	redistest.Client(t, src, 0).Set(context.Background(), "k", "v", 0)
	auth := redistest.Start(t, "--requirepass", "right")
	dir := t.TempDir()
	if out, code := e2e.Sh(t, dir, `crsdump -u `+src.URL+` -o good.zst`); code != 0 {
		t.Fatalf("dump: exit %d: %s", code, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "notdump.json"), []byte(`{"users":[]}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		script string
		code   int
		output string
	}{
		{"unknown flag", `crsload --nope`, 2, "flag provided but not defined"},
		{"bad ttl", `crsload --ttl=forever good.zst`, 2, "--ttl must be"},
		{"two policies", `crsload -u ` + src.URL + ` --replace --skip-existing good.zst`, 2, "cannot be used together"},
		{"not a dump", `crsload -u ` + src.URL + ` notdump.json`, 3, "line 1: not a crs dump"},
		{"truncated", `head -c 60 good.zst > cut.zst; crsload -u ` + src.URL + ` cut.zst`, 3, "line "},
		{"corrupt zstd", `printf '\050\265\057\375garbage' > bad.zst; crsload -u ` + src.URL + ` bad.zst`, 3, "line 1: cannot read input"},
		{"target not empty", `crsload -u ` + src.URL + ` good.zst`, 4, "db 0 has 1 keys"},
		{"connection refused", `crsload -p 1 good.zst`, 5, "connection refused"},
		{"wrong password", `crsdump -u redis://:wrong@` + auth.Addr + ` -o x.zst`, 5, "authentication failed"},
		{"no password", `crsdump -u ` + auth.URL + ` -o x.zst`, 5, "authentication failed"},
		{"missing file", `crsload nosuchfile`, 1, "no such file"},
		{"verify, connection refused", `crs verify -p 1 good.zst`, 5, "connection refused"},
		{"a URL without its //", `crsdump -u redis//127.0.0.1:1 -o x.zst`, 2, `bad URL "redis//127.0.0.1:1": it must start with redis://, rediss:// or unix://`},
		{"a URL with a bad database", `crsload -u redis://127.0.0.1:1/abc good.zst`, 2, `bad URL "redis://127.0.0.1:1/abc"`},
		{"stats of a plain JSON file", `crs stats notdump.json`, 3, "line 1: not a crs dump"},
		{"verify without input", `crs verify -u ` + src.URL, 2, "give either a dump FILE or --source URL"},
		{"verify of a source, the target forgotten", `crs verify --source ` + src.URL, 2, "name the server to check: --target URL"},
		{"header cut after a member name", `printf '{"format":"crs","version":1,"field_expiry":\n' > cuthdr.jsonl; crsload --check cuthdr.jsonl`, 3, "line 1: "},
		{"header cut, stats", `printf '{"format":"crs","version":1,"field_expiry":\n' > cuthdr.jsonl; crs stats cuthdr.jsonl`, 3, "line 1: "},
		{"header cut, load", `printf '{"format":"crs","version":1,"field_expiry":\n' > cuthdr.jsonl; crsload -u ` + src.URL + ` cuthdr.jsonl`, 3, "line 1: "},
		// Flags after the file, as git, kubectl and redis-cli users write them.
		{"load, flags after the file", `crsload good.zst -u ` + src.URL + ` --skip-existing --json`, 0, `"skipped_existing":1`},
		{"stats, flags after the file", `crs stats good.zst --top 5 --json`, 0, `"biggest_keys"`},
		{"verify, flags after the file", `crs verify good.zst -u ` + src.URL, 0, "1 keys checked, 0 differences"},
		{"two files", `crs stats good.zst --top 5 good.zst`, 2, "one dump FILE at most"},
		{"verify --json", `crs verify --json good.zst -u ` + src.URL, 0, `"tool":"crs verify","ok":true,"keys":1,`},
		{"load --summary-json", `crsload -q --skip-existing --summary-json s.json -u ` + src.URL + ` good.zst && cat s.json`, 0, `"skipped_existing":1`},
		{"a bad --log-format", `crs stats --log-format xml good.zst`, 2, "--log-format must be text or json"},
		{"plain lines carry their time", `crsload --log-format text --skip-existing -u ` + src.URL + ` good.zst`, 0, "Z crsload: loaded 0 keys"},
		// What a newcomer types first.
		{"crs help", `crs help`, 0, "COMMANDS:"},
		{"crs help sync", `crs help sync`, 0, "--cutover"},
		{"crs -h", `crs -h`, 0, "COMMANDS:"},
		{"a command crs lacks", `crs frobnicate`, 2, `crs: no command "frobnicate": the commands are dump, load, stats, verify, sync`},
		{"-h with no host", `crsload -h`, 2, "-h is the server's host, as in redis-cli"},
		{"--version in the help", `crs --help`, 0, "--version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := e2e.Sh(t, dir, tt.script)
			if code != tt.code {
				t.Errorf("exit %d, want %d:\n%s", code, tt.code, out)
			}
			if !strings.Contains(out, tt.output) {
				t.Errorf("output does not mention %q:\n%s", tt.output, out)
			}
			if strings.Contains(out, "goroutine ") || strings.Contains(out, "panic:") {
				t.Errorf("stack trace:\n%s", out)
			}
			if strings.Contains(out, ":wrong@") {
				t.Errorf("password printed:\n%s", out)
			}
		})
	}
}

// TestOneLineErrors: a command that fails before its first key says the
// cause in one line, with no summary of nothing done before it.
func TestOneLineErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "d.jsonl"), []byte(`{"format":"crs","version":1}`+"\n"+`{"end":true,"records":0,"keys":0,"crc32c":"00000000"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, script := range []string{
		`crsdump -p 1 -o x.zst`,
		`crsload -p 1 d.jsonl`,
		`crs verify -p 1 d.jsonl`,
		`crs stats -p 1`,
		`crsdump -u redis//127.0.0.1:1 -o x.zst`,
	} {
		out, code := e2e.Sh(t, dir, script)
		if code == 0 || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("%s: exit %d, want one line:\n%s", script, code, out)
		}
	}
}

func TestDumpRefusesTerminalAndHidesPassword(t *testing.T) {
	s := redistest.Start(t, "--requirepass", "hunter2")
	dir := t.TempDir()
	if _, err := exec.LookPath("script"); err == nil {
		// script(1) gives crsdump a terminal as its standard output.
		out, code := e2e.Sh(t, dir, `script -qec "crsdump -u redis://:hunter2@`+s.Addr+`" /dev/null`)
		if code != 4 || !strings.Contains(out, "refusing to write compressed data to a terminal") {
			t.Errorf("exit %d:\n%s", code, out)
		}
		out, code = e2e.Sh(t, dir, `script -qec "crsdump --compress=none -u redis://:hunter2@`+s.Addr+`" /dev/null`)
		if code != 0 || !strings.Contains(out, `{"format":"crs"`) {
			t.Errorf("plain output to a terminal: exit %d:\n%s", code, out)
		}
	} else if os.Getenv("CI") != "" {
		t.Error("script(1) is not installed")
	}
	out, code := e2e.Sh(t, dir, `crsdump -u redis://:hunter2@`+s.Addr+` --compress=none -o d.jsonl && cat d.jsonl`)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if strings.Contains(out, "hunter2") {
		t.Errorf("password in dump or output:\n%s", out)
	}
	if !strings.Contains(out, `"source":"`+s.Addr+`"`) {
		t.Errorf("header does not name the source:\n%s", out)
	}
}

// TestVersion: --version names the program, its module version and the
// Go it was built with, under every name, and exits 0.
func TestVersion(t *testing.T) {
	for _, cmd := range []string{"crs --version", "crsdump --version", "crsload --version", "crs load --version"} {
		out, code := e2e.Sh(t, t.TempDir(), cmd)
		name := strings.Fields(cmd)[0]
		if code != 0 || !strings.HasPrefix(out, name+" ") || !strings.Contains(out, "go1.") {
			t.Errorf("%s: exit %d: %s", cmd, code, out)
		}
	}
}

// TestCompletionAndMan: crs completion bash completes a command's flags
// from the CLI's definitions, under each name; zsh's and fish's are made
// too; crs man is a manual page naming the flags.
func TestCompletionAndMan(t *testing.T) {
	dir := t.TempDir()
	script := `source <(crs completion bash)
COMP_WORDS=(crsdump --ren); COMP_CWORD=1; _crs; echo "dump: ${COMPREPLY[*]}"
COMP_WORDS=(crs lo); COMP_CWORD=1; _crs; echo "commands: ${COMPREPLY[*]}"
COMP_WORDS=(crs load --allow-t); COMP_CWORD=2; _crs; echo "load: ${COMPREPLY[*]}"`
	out, code := e2e.Sh(t, dir, "bash -c '"+strings.ReplaceAll(script, "'", `'\''`)+"'")
	for _, want := range []string{"dump: --rename", "commands: load", "load: --allow-truncated"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("bash completion: exit %d, want %q:\n%s", code, want, out)
		}
	}
	for _, tt := range []struct{ cmd, want string }{
		{"crs completion zsh", "#compdef crs crsdump crsload"},
		{"crs completion fish", "complete -c crs"},
		{"crs completion fish", "complete -c crsdump -l rename -r -d "},
		{"crs completion fish", "complete -c crsload -l allow-truncated -d "},
		{"crs man", ".SH NAME"},
		{"crs man", ".TH crs 1"},
		{"crs man", "--rename"},
		{"crs man", ".SH EXIT STATUS"},
		{"crs man crsdump", ".TH crsdump 1"},
		{"crs man crsload", ".B 130"},
		{"crs man crsload", "crsload --dry-run"},
	} {
		if out, code := e2e.Sh(t, dir, tt.cmd); code != 0 || !strings.Contains(out, tt.want) {
			t.Errorf("%s: exit %d, no %q", tt.cmd, code, tt.want)
		}
	}
	// The manual's exit codes are the README's.
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, _ := strings.Cut(string(readme), "\n## Exit codes\n")
	table, _, _ = strings.Cut(table, "\n## ")
	var inREADME, inMan []string
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Split(line, "|"); len(f) > 2 && strings.TrimSpace(f[1]) != "" && strings.Trim(strings.TrimSpace(f[1]), "0123456789") == "" {
			inREADME = append(inREADME, strings.TrimSpace(f[1]))
		}
	}
	out, _ = e2e.Sh(t, dir, "crs man")
	for _, line := range strings.Split(out, "\n") {
		if code, ok := strings.CutPrefix(line, ".B "); ok && strings.Trim(code, "0123456789") == "" {
			inMan = append(inMan, code)
		}
	}
	if len(inMan) < 9 || strings.Join(inMan, " ") != strings.Join(inREADME, " ") {
		t.Errorf("exit codes: the manual has %v, the README %v", inMan, inREADME)
	}
	// Fish showed urfave/cli's backticks; bash offered --help twice.
	if out, _ := e2e.Sh(t, dir, "crs completion fish"); strings.Contains(out, "`") {
		t.Errorf("fish completion shows backticks:\n%s", e2e.LineWith(out, "`"))
	}
	if out, _ := e2e.Sh(t, dir, "crs completion bash"); strings.Contains(out, "--help --help") {
		t.Errorf("bash completion offers --help twice:\n%s", e2e.LineWith(out, "--help --help"))
	}
	if out, code := e2e.Sh(t, dir, "crs completion tcsh"); code != 2 {
		t.Errorf("crs completion tcsh: exit %d\n%s", code, out)
	}
}

func TestMain(m *testing.M) { e2e.Main(m) }
