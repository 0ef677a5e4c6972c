# Prints the words fish's completion for mmnotif-trace offers, one a line, for the command line
# $argv[2] (completing its last word).
# Usage: fish --no-config complete.fish COMPLETION-SCRIPT LINE
source $argv[1]; or exit 2
# `complete -C` prints "word<TAB>description".
complete -C $argv[2] | string replace -r '\t.*' ''
