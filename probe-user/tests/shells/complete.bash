# Prints the words bash's completion for mmnotif-trace offers, one a line, for the command line
# $2 (its last word is the one completed; a trailing space completes a new word).
# Usage: bash --norc --noprofile complete.bash COMPLETION-SCRIPT LINE
set -u
source "$1" || exit 2
# The function `complete -F` registered for the command: the one a user's TAB would run.
spec=$(complete -p mmnotif-trace) || exit 3
fn=${spec#*-F }
fn=${fn%% *}
COMP_LINE=$2
COMP_POINT=${#COMP_LINE}
read -ra COMP_WORDS <<<"$COMP_LINE"
[[ $COMP_LINE == *' ' ]] && COMP_WORDS+=('')
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
COMPREPLY=()
"$fn" mmnotif-trace "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
printf '%s\n' "${COMPREPLY[@]}"
