package main

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

// completionCommand is crs completion bash|zsh|fish: a shell's completion
// of the commands and their flags, made from the same definitions as the
// CLI itself, for crs, crsdump and crsload.
func completionCommand() *cli.Command {
	return &cli.Command{
		Name:         "completion",
		Usage:        "print shell completion for crs, crsdump and crsload: bash, zsh or fish",
		UsageText:    "source <(crs completion bash)\ncrs completion fish > ~/.config/fish/completions/crs.fish",
		OnUsageError: onUsage,
		Action: func(c *cli.Context) error {
			shell := c.Args().First()
			switch shell {
			case "bash":
				return bashCompletion(c.App, c.App.Writer, false)
			case "zsh":
				return bashCompletion(c.App, c.App.Writer, true)
			case "fish":
				_, err := io.WriteString(c.App.Writer, fishCompletion(c.App))
				return err
			}
			return usageError{fmt.Errorf("completion for %q: give bash, zsh or fish", shell)}
		},
	}
}

// manCommand is crs man [crs|crsdump|crsload]: a manual page, in roff,
// section 1, from the same definitions (make man writes all three).
func manCommand() *cli.Command {
	return &cli.Command{
		Name:         "man",
		Usage:        "print the manual page (roff) of crs, crsdump or crsload",
		UsageText:    "crs man > crs.1; crs man crsdump > crsdump.1; crs man crsload > crsload.1",
		OnUsageError: onUsage,
		Action: func(c *cli.Context) error {
			name := c.Args().First()
			page := c.App
			switch name {
			case "", "crs":
				name = "crs"
			case "crsdump", "crsload":
				cmd := c.App.Command(strings.TrimPrefix(name, "crs"))
				page = &cli.App{Name: name, Usage: cmd.Usage, UsageText: cmd.UsageText, Flags: cmd.Flags, HideHelpCommand: true}
			default:
				return usageError{fmt.Errorf("no manual page %q: give crs, crsdump or crsload", name)}
			}
			s, err := page.ToManWithSection(1)
			if err != nil {
				return err
			}
			_, err = io.WriteString(c.App.Writer, s+manTail(name))
			return err
		},
	}
}

// manExamples are the EXAMPLES of each manual page.
var manExamples = map[string][]string{
	"crsdump": {
		"crsdump -u redis://old-host:6380 > crs.jsonl.zst",
		"crsdump -u redis://node1:7000 -o cluster.jsonl.zst    # every shard of a cluster",
		"crsdump -i dump.rdb -o crs.jsonl.zst                  # an RDB file of any version",
		"zstd -dc crs.jsonl.zst | jq .                         # look inside",
	},
	"crsload": {
		"crsload -u redis://new-host:6380 < crs.jsonl.zst",
		"crsload --dry-run -u redis://new-host:6380 crs.jsonl.zst   # the pre-flight alone",
		"crsload -u redis://new-host:6380 dump.rdb                  # an RDB file, into any version",
		"crsload -u redis://new-host:6380 old.json                  # a Ruby redis-dump file",
	},
}

func init() {
	manExamples["crs"] = append(append([]string{}, manExamples["crsdump"][0], manExamples["crsload"][0]),
		"crs verify -u redis://new-host:6380 crs.jsonl.zst",
		"crs stats crs.jsonl.zst",
		"crs sync --source redis://old-host:6380 --target redis://new-host:6380 --cutover")
}

// manTail is what ToMan does not make: EXAMPLES, EXIT STATUS, SEE ALSO.
func manTail(name string) string {
	var b strings.Builder
	b.WriteString("\n.SH EXAMPLES\n.EX\n")
	for _, e := range manExamples[name] {
		b.WriteString(strings.ReplaceAll(e, "\\", "\\\\") + "\n")
	}
	b.WriteString(".EE\n\n.SH EXIT STATUS\n")
	for _, c := range exitCodes {
		fmt.Fprintf(&b, ".TP\n.B %d\n%s\n", c.code, c.meaning)
	}
	b.WriteString("\n.SH SEE ALSO\n")
	var see []string
	for _, n := range []string{"crs", "crsdump", "crsload"} {
		if n != name {
			see = append(see, "\\fB"+n+"\\fP(1)")
		}
	}
	b.WriteString(strings.Join(see, ", ") + ", \\fBredis-server\\fP(1); FORMAT.md and README.md in the source\n")
	return b.String()
}

// fishCompletion is fish's completion of crs's commands and each one's
// flags, and of crsdump's and crsload's flags (dump's and load's).
func fishCompletion(app *cli.App) string {
	var b strings.Builder
	b.WriteString("# fish completion for crs, crsdump and crsload\n")
	for _, c := range app.Commands {
		if c.Hidden {
			continue
		}
		fmt.Fprintf(&b, "complete -c crs -f -n __fish_use_subcommand -a %s -d %s\n", c.Name, fishQuote(c.Usage))
		fishFlags(&b, "crs", "-n '__fish_seen_subcommand_from "+c.Name+"' ", c.Flags)
		switch c.Name {
		case "dump", "load":
			fishFlags(&b, "crs"+c.Name, "", c.Flags)
		}
	}
	return b.String()
}

func fishFlags(b *strings.Builder, prog, cond string, flags []cli.Flag) {
	for _, f := range flags {
		line := "complete -c " + prog + " " + cond
		for _, n := range f.Names() {
			if len(n) == 1 {
				line += "-s " + n + " "
			} else {
				line += "-l " + n + " "
			}
		}
		if _, ok := f.(*cli.BoolFlag); !ok {
			line += "-r "
		}
		if d, ok := f.(cli.DocGenerationFlag); ok {
			line += "-d " + fishQuote(d.GetUsage())
		}
		b.WriteString(strings.TrimSpace(line) + "\n")
	}
}

// fishQuote quotes s for fish, without urfave/cli's backticks around a
// flag's value name.
func fishQuote(s string) string {
	s = strings.ReplaceAll(s, "`", "")
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// bashCompletion writes a bash completion function of every command and
// its flags; zsh runs it through bashcompinit.
func bashCompletion(app *cli.App, w io.Writer, zsh bool) error {
	var b strings.Builder
	if zsh {
		b.WriteString("#compdef crs crsdump crsload\nautoload -U +X bashcompinit && bashcompinit\n")
	}
	var names []string
	for _, c := range app.Commands {
		if !c.Hidden {
			names = append(names, c.Name)
		}
	}
	sort.Strings(names)
	fmt.Fprintf(&b, `_crs() {
  local cur=${COMP_WORDS[COMP_CWORD]} prog=${COMP_WORDS[0]##*/} cmd=${COMP_WORDS[1]}
  case "$prog" in
    crsdump) cmd=dump ;;
    crsload) cmd=load ;;
    *) if [[ $COMP_CWORD -eq 1 ]]; then COMPREPLY=($(compgen -W "%s" -- "$cur")); return; fi ;;
  esac
  local opts=""
  case "$cmd" in
`, strings.Join(names, " "))
	for _, c := range app.Commands {
		var flags []string
		for _, f := range c.Flags {
			for _, n := range f.Names() {
				if len(n) == 1 {
					flags = append(flags, "-"+n)
				} else {
					flags = append(flags, "--"+n)
				}
			}
		}
		if !slices.Contains(flags, "--help") {
			flags = append(flags, "--help")
		}
		fmt.Fprintf(&b, "    %s) opts=%q ;;\n", c.Name, strings.Join(flags, " "))
	}
	b.WriteString(`  esac
  if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W "$opts" -- "$cur")); else COMPREPLY=($(compgen -f -- "$cur")); fi
}
complete -o default -F _crs crs crsdump crsload
`)
	_, err := io.WriteString(w, b.String())
	return err
}
