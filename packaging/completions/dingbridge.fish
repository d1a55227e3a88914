# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_dingbridge_global_optspecs
    string join \n config= log-format= h/help V/version
end

function __fish_dingbridge_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_dingbridge_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_dingbridge_using_subcommand
    set -l cmd (__fish_dingbridge_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c dingbridge -n "__fish_dingbridge_needs_command" -l config -d 'Configuration file (default: ./dingbridge.toml when present)' -r -F
complete -c dingbridge -n "__fish_dingbridge_needs_command" -l log-format -d 'Log line format on stderr (default: `[log] format`, else text)' -r -f -a "text\t'Human-readable lines (the default)'
json\t'One JSON object per line: `timestamp` (RFC 3339, UTC), `level`, `target`, the event\'s fields (`message`, …), `span` (the innermost span: `name`, `request_id`, `trace_id`, `method`, `route`) and `spans` (every enclosing span\'s fields)'"
complete -c dingbridge -n "__fish_dingbridge_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dingbridge -n "__fish_dingbridge_needs_command" -s V -l version -d 'Print version'
complete -c dingbridge -n "__fish_dingbridge_needs_command" -f -a "serve" -d 'Run the HTTP service'
complete -c dingbridge -n "__fish_dingbridge_needs_command" -f -a "migrate" -d 'Create or upgrade the database schema, then exit'
complete -c dingbridge -n "__fish_dingbridge_needs_command" -f -a "check-config" -d 'Print the effective configuration (secrets redacted) and exit non-zero if it is invalid'
complete -c dingbridge -n "__fish_dingbridge_needs_command" -f -a "doctor" -d 'Check the configuration against DingTalk (cloud, dev) or the cloud and PostgreSQL (local); exit 1 when something blocks'
complete -c dingbridge -n "__fish_dingbridge_needs_command" -f -a "completions" -d 'Print a shell completion script for bash, zsh or fish to stdout'
complete -c dingbridge -n "__fish_dingbridge_needs_command" -f -a "oidc" -d 'The OpenID Provider (local and dev modes)'
complete -c dingbridge -n "__fish_dingbridge_needs_command" -f -a "quota" -d 'DingTalk\'s monthly quota of metered calls (cloud and dev modes): without a subcommand, this month\'s figures per corp'
complete -c dingbridge -n "__fish_dingbridge_needs_command" -f -a "relay" -d 'Relayed messages held for an operator (cloud and dev modes, `delivery.uncertain_batches = "hold"`): a cloud instance stopped during one of their DingTalk calls, so a batch may or may not have been sent'
complete -c dingbridge -n "__fish_dingbridge_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand serve" -l mode -d 'Deploy mode: dev (both roles, SQLite), cloud (relay to DingTalk) or local (PostgreSQL)' -r -f -a "dev\t''
cloud\t''
local\t''"
complete -c dingbridge -n "__fish_dingbridge_using_subcommand serve" -l bind -d 'Listen address, e.g. 127.0.0.1:8080' -r
complete -c dingbridge -n "__fish_dingbridge_using_subcommand serve" -l config -d 'Configuration file (default: ./dingbridge.toml when present)' -r -F
complete -c dingbridge -n "__fish_dingbridge_using_subcommand serve" -l log-format -d 'Log line format on stderr (default: `[log] format`, else text)' -r -f -a "text\t'Human-readable lines (the default)'
json\t'One JSON object per line: `timestamp` (RFC 3339, UTC), `level`, `target`, the event\'s fields (`message`, …), `span` (the innermost span: `name`, `request_id`, `trace_id`, `method`, `route`) and `spans` (every enclosing span\'s fields)'"
complete -c dingbridge -n "__fish_dingbridge_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand migrate" -l config -d 'Configuration file (default: ./dingbridge.toml when present)' -r -F
complete -c dingbridge -n "__fish_dingbridge_using_subcommand migrate" -l log-format -d 'Log line format on stderr (default: `[log] format`, else text)' -r -f -a "text\t'Human-readable lines (the default)'
json\t'One JSON object per line: `timestamp` (RFC 3339, UTC), `level`, `target`, the event\'s fields (`message`, …), `span` (the innermost span: `name`, `request_id`, `trace_id`, `method`, `route`) and `spans` (every enclosing span\'s fields)'"
complete -c dingbridge -n "__fish_dingbridge_using_subcommand migrate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand check-config" -l config -d 'Configuration file (default: ./dingbridge.toml when present)' -r -F
complete -c dingbridge -n "__fish_dingbridge_using_subcommand check-config" -l log-format -d 'Log line format on stderr (default: `[log] format`, else text)' -r -f -a "text\t'Human-readable lines (the default)'
json\t'One JSON object per line: `timestamp` (RFC 3339, UTC), `level`, `target`, the event\'s fields (`message`, …), `span` (the innermost span: `name`, `request_id`, `trace_id`, `method`, `route`) and `spans` (every enclosing span\'s fields)'"
complete -c dingbridge -n "__fish_dingbridge_using_subcommand check-config" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand doctor" -l config -d 'Configuration file (default: ./dingbridge.toml when present)' -r -F
complete -c dingbridge -n "__fish_dingbridge_using_subcommand doctor" -l log-format -d 'Log line format on stderr (default: `[log] format`, else text)' -r -f -a "text\t'Human-readable lines (the default)'
json\t'One JSON object per line: `timestamp` (RFC 3339, UTC), `level`, `target`, the event\'s fields (`message`, …), `span` (the innermost span: `name`, `request_id`, `trace_id`, `method`, `route`) and `spans` (every enclosing span\'s fields)'"
complete -c dingbridge -n "__fish_dingbridge_using_subcommand doctor" -l json -d 'Print the findings as one JSON document'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand doctor" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand completions" -l config -d 'Configuration file (default: ./dingbridge.toml when present)' -r -F
complete -c dingbridge -n "__fish_dingbridge_using_subcommand completions" -l log-format -d 'Log line format on stderr (default: `[log] format`, else text)' -r -f -a "text\t'Human-readable lines (the default)'
json\t'One JSON object per line: `timestamp` (RFC 3339, UTC), `level`, `target`, the event\'s fields (`message`, …), `span` (the innermost span: `name`, `request_id`, `trace_id`, `method`, `route`) and `spans` (every enclosing span\'s fields)'"
complete -c dingbridge -n "__fish_dingbridge_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand oidc; and not __fish_seen_subcommand_from rotate-keys help" -l config -d 'Configuration file (default: ./dingbridge.toml when present)' -r -F
complete -c dingbridge -n "__fish_dingbridge_using_subcommand oidc; and not __fish_seen_subcommand_from rotate-keys help" -l log-format -d 'Log line format on stderr (default: `[log] format`, else text)' -r -f -a "text\t'Human-readable lines (the default)'
json\t'One JSON object per line: `timestamp` (RFC 3339, UTC), `level`, `target`, the event\'s fields (`message`, …), `span` (the innermost span: `name`, `request_id`, `trace_id`, `method`, `route`) and `spans` (every enclosing span\'s fields)'"
complete -c dingbridge -n "__fish_dingbridge_using_subcommand oidc; and not __fish_seen_subcommand_from rotate-keys help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand oidc; and not __fish_seen_subcommand_from rotate-keys help" -f -a "rotate-keys" -d 'Create new signing keys now; the previous ones stop signing but stay in the JWKS until every token they signed has expired (plus a day). Running services pick the new keys up within 10 minutes'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand oidc; and not __fish_seen_subcommand_from rotate-keys help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand oidc; and __fish_seen_subcommand_from rotate-keys" -l config -d 'Configuration file (default: ./dingbridge.toml when present)' -r -F
complete -c dingbridge -n "__fish_dingbridge_using_subcommand oidc; and __fish_seen_subcommand_from rotate-keys" -l log-format -d 'Log line format on stderr (default: `[log] format`, else text)' -r -f -a "text\t'Human-readable lines (the default)'
json\t'One JSON object per line: `timestamp` (RFC 3339, UTC), `level`, `target`, the event\'s fields (`message`, …), `span` (the innermost span: `name`, `request_id`, `trace_id`, `method`, `route`) and `spans` (every enclosing span\'s fields)'"
complete -c dingbridge -n "__fish_dingbridge_using_subcommand oidc; and __fish_seen_subcommand_from rotate-keys" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand oidc; and __fish_seen_subcommand_from help" -f -a "rotate-keys" -d 'Create new signing keys now; the previous ones stop signing but stay in the JWKS until every token they signed has expired (plus a day). Running services pick the new keys up within 10 minutes'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand oidc; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand quota; and not __fish_seen_subcommand_from resume help" -l config -d 'Configuration file (default: ./dingbridge.toml when present)' -r -F
complete -c dingbridge -n "__fish_dingbridge_using_subcommand quota; and not __fish_seen_subcommand_from resume help" -l log-format -d 'Log line format on stderr (default: `[log] format`, else text)' -r -f -a "text\t'Human-readable lines (the default)'
json\t'One JSON object per line: `timestamp` (RFC 3339, UTC), `level`, `target`, the event\'s fields (`message`, …), `span` (the innermost span: `name`, `request_id`, `trace_id`, `method`, `route`) and `spans` (every enclosing span\'s fields)'"
complete -c dingbridge -n "__fish_dingbridge_using_subcommand quota; and not __fish_seen_subcommand_from resume help" -l json -d 'Print the figures as JSON'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand quota; and not __fish_seen_subcommand_from resume help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand quota; and not __fish_seen_subcommand_from resume help" -f -a "resume" -d 'Let a corp\'s metered calls (work notifications) go again this month after DingTalk answered 90020, e.g. once the org bought an add-on pack. Waiting messages go out at their next retry'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand quota; and not __fish_seen_subcommand_from resume help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand quota; and __fish_seen_subcommand_from resume" -l corp-id -d 'The corp, e.g. dingxxxxxxxx' -r
complete -c dingbridge -n "__fish_dingbridge_using_subcommand quota; and __fish_seen_subcommand_from resume" -l config -d 'Configuration file (default: ./dingbridge.toml when present)' -r -F
complete -c dingbridge -n "__fish_dingbridge_using_subcommand quota; and __fish_seen_subcommand_from resume" -l log-format -d 'Log line format on stderr (default: `[log] format`, else text)' -r -f -a "text\t'Human-readable lines (the default)'
json\t'One JSON object per line: `timestamp` (RFC 3339, UTC), `level`, `target`, the event\'s fields (`message`, …), `span` (the innermost span: `name`, `request_id`, `trace_id`, `method`, `route`) and `spans` (every enclosing span\'s fields)'"
complete -c dingbridge -n "__fish_dingbridge_using_subcommand quota; and __fish_seen_subcommand_from resume" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand quota; and __fish_seen_subcommand_from help" -f -a "resume" -d 'Let a corp\'s metered calls (work notifications) go again this month after DingTalk answered 90020, e.g. once the org bought an add-on pack. Waiting messages go out at their next retry'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand quota; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand relay; and not __fish_seen_subcommand_from resend abandon help" -l config -d 'Configuration file (default: ./dingbridge.toml when present)' -r -F
complete -c dingbridge -n "__fish_dingbridge_using_subcommand relay; and not __fish_seen_subcommand_from resend abandon help" -l log-format -d 'Log line format on stderr (default: `[log] format`, else text)' -r -f -a "text\t'Human-readable lines (the default)'
json\t'One JSON object per line: `timestamp` (RFC 3339, UTC), `level`, `target`, the event\'s fields (`message`, …), `span` (the innermost span: `name`, `request_id`, `trace_id`, `method`, `route`) and `spans` (every enclosing span\'s fields)'"
complete -c dingbridge -n "__fish_dingbridge_using_subcommand relay; and not __fish_seen_subcommand_from resend abandon help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand relay; and not __fish_seen_subcommand_from resend abandon help" -f -a "resend" -d 'Send the held message again: every batch without a task id goes out (a person who already got an uncertain batch does not see it twice: DingTalk delivers the same content to a person once a day)'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand relay; and not __fish_seen_subcommand_from resend abandon help" -f -a "abandon" -d 'Give the held message up: its unsent batches fail and the message ends `failed`'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand relay; and not __fish_seen_subcommand_from resend abandon help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand relay; and __fish_seen_subcommand_from resend" -l client-id -d 'The relay client that sent it' -r
complete -c dingbridge -n "__fish_dingbridge_using_subcommand relay; and __fish_seen_subcommand_from resend" -l key -d 'Its idempotency key (local\'s message id)' -r
complete -c dingbridge -n "__fish_dingbridge_using_subcommand relay; and __fish_seen_subcommand_from resend" -l config -d 'Configuration file (default: ./dingbridge.toml when present)' -r -F
complete -c dingbridge -n "__fish_dingbridge_using_subcommand relay; and __fish_seen_subcommand_from resend" -l log-format -d 'Log line format on stderr (default: `[log] format`, else text)' -r -f -a "text\t'Human-readable lines (the default)'
json\t'One JSON object per line: `timestamp` (RFC 3339, UTC), `level`, `target`, the event\'s fields (`message`, …), `span` (the innermost span: `name`, `request_id`, `trace_id`, `method`, `route`) and `spans` (every enclosing span\'s fields)'"
complete -c dingbridge -n "__fish_dingbridge_using_subcommand relay; and __fish_seen_subcommand_from resend" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand relay; and __fish_seen_subcommand_from abandon" -l client-id -d 'The relay client that sent it' -r
complete -c dingbridge -n "__fish_dingbridge_using_subcommand relay; and __fish_seen_subcommand_from abandon" -l key -d 'Its idempotency key (local\'s message id)' -r
complete -c dingbridge -n "__fish_dingbridge_using_subcommand relay; and __fish_seen_subcommand_from abandon" -l config -d 'Configuration file (default: ./dingbridge.toml when present)' -r -F
complete -c dingbridge -n "__fish_dingbridge_using_subcommand relay; and __fish_seen_subcommand_from abandon" -l log-format -d 'Log line format on stderr (default: `[log] format`, else text)' -r -f -a "text\t'Human-readable lines (the default)'
json\t'One JSON object per line: `timestamp` (RFC 3339, UTC), `level`, `target`, the event\'s fields (`message`, …), `span` (the innermost span: `name`, `request_id`, `trace_id`, `method`, `route`) and `spans` (every enclosing span\'s fields)'"
complete -c dingbridge -n "__fish_dingbridge_using_subcommand relay; and __fish_seen_subcommand_from abandon" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand relay; and __fish_seen_subcommand_from help" -f -a "resend" -d 'Send the held message again: every batch without a task id goes out (a person who already got an uncertain batch does not see it twice: DingTalk delivers the same content to a person once a day)'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand relay; and __fish_seen_subcommand_from help" -f -a "abandon" -d 'Give the held message up: its unsent batches fail and the message ends `failed`'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand relay; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand help; and not __fish_seen_subcommand_from serve migrate check-config doctor completions oidc quota relay help" -f -a "serve" -d 'Run the HTTP service'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand help; and not __fish_seen_subcommand_from serve migrate check-config doctor completions oidc quota relay help" -f -a "migrate" -d 'Create or upgrade the database schema, then exit'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand help; and not __fish_seen_subcommand_from serve migrate check-config doctor completions oidc quota relay help" -f -a "check-config" -d 'Print the effective configuration (secrets redacted) and exit non-zero if it is invalid'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand help; and not __fish_seen_subcommand_from serve migrate check-config doctor completions oidc quota relay help" -f -a "doctor" -d 'Check the configuration against DingTalk (cloud, dev) or the cloud and PostgreSQL (local); exit 1 when something blocks'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand help; and not __fish_seen_subcommand_from serve migrate check-config doctor completions oidc quota relay help" -f -a "completions" -d 'Print a shell completion script for bash, zsh or fish to stdout'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand help; and not __fish_seen_subcommand_from serve migrate check-config doctor completions oidc quota relay help" -f -a "oidc" -d 'The OpenID Provider (local and dev modes)'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand help; and not __fish_seen_subcommand_from serve migrate check-config doctor completions oidc quota relay help" -f -a "quota" -d 'DingTalk\'s monthly quota of metered calls (cloud and dev modes): without a subcommand, this month\'s figures per corp'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand help; and not __fish_seen_subcommand_from serve migrate check-config doctor completions oidc quota relay help" -f -a "relay" -d 'Relayed messages held for an operator (cloud and dev modes, `delivery.uncertain_batches = "hold"`): a cloud instance stopped during one of their DingTalk calls, so a batch may or may not have been sent'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand help; and not __fish_seen_subcommand_from serve migrate check-config doctor completions oidc quota relay help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand help; and __fish_seen_subcommand_from oidc" -f -a "rotate-keys" -d 'Create new signing keys now; the previous ones stop signing but stay in the JWKS until every token they signed has expired (plus a day). Running services pick the new keys up within 10 minutes'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand help; and __fish_seen_subcommand_from quota" -f -a "resume" -d 'Let a corp\'s metered calls (work notifications) go again this month after DingTalk answered 90020, e.g. once the org bought an add-on pack. Waiting messages go out at their next retry'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand help; and __fish_seen_subcommand_from relay" -f -a "resend" -d 'Send the held message again: every batch without a task id goes out (a person who already got an uncertain batch does not see it twice: DingTalk delivers the same content to a person once a day)'
complete -c dingbridge -n "__fish_dingbridge_using_subcommand help; and __fish_seen_subcommand_from relay" -f -a "abandon" -d 'Give the held message up: its unsent batches fail and the message ends `failed`'
