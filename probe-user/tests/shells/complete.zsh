# Prints the words zsh's completion system offers for mmnotif-trace, one a line, for the command
# line $2: an interactive zsh in a pseudo-terminal (zsh/zpty) loads compinit with DIR first in
# $fpath, the line is typed followed by TAB, and every match the completion functions add is
# recorded. Only an interactive line editor runs completion widgets, hence the pty.
# Usage: zsh -f complete.zsh DIR LINE   (DIR holds the _mmnotif-trace completion function)
emulate -L zsh
zmodload zsh/zpty || exit 2
dir=$1 line=$2
hits=$(mktemp) || exit 2
zpty comp zsh -f -i || exit 2
# Each command is sent once the previous prompt is shown: keys typed ahead of the line editor
# are not reliably kept. The prompt is set so that its echo does not match it.
ready() { zpty -r comp _ '*READY:' || exit 3 }
zpty -w comp "PS1=READ''Y:"
ready
zpty -w comp "fpath=(${(q)dir} \$fpath); autoload -Uz compinit; compinit -u -D"
ready
zpty -w comp "(( \$+_comps[mmnotif-trace] )) || print -r -- '!no completion function for mmnotif-trace' >> ${(q)hits}"
ready
# Every compadd that adds matches also records them: calls that only compute (-O/-A/-D) are
# passed through, the others are run once with -A to learn which of their words match what
# is typed, then for real.
zpty -w comp "compadd() {
  if [[ \${(j: :)@} == *-[OAD]\\ * ]]; then builtin compadd \"\$@\"; return; fi
  local -a matched; builtin compadd -A matched \"\$@\"
  (( \$#matched )) && print -rl -- \$matched >> ${(q)hits}
  builtin compadd \"\$@\"
}"
ready
zpty -w -n comp "$line"$'\t'
# Completion runs before the editor reads the next key: clear the line and leave.
zpty -w comp $'\C-u'"exit"
while zpty -r comp _; do :; done
zpty -d comp
# (No EXIT trap for the removal: the pty's forked shell would inherit it and run it first.)
sort -u -- $hits
rm -f -- $hits
