# SPDX-License-Identifier: MIT
# --swapfile takes a directory, as --help says (the file gets no name there), or the
# path of a new file (unlinked at once); an existing file is refused in one line rather
# than overwritten. Either way nothing is left behind.
. "$here/errlib.sh"

# random pages do not compress: with the pool held to 4M they go to the swap file
mkdir -p "$work/swapdir"
compare_run swapfile-directory 32 120 --zswap-max 4M --swapfile "$work/swapdir" -- \
	"$progs/fill_random" 64 1
written=$(stat_of "$work/stats" written_back_pages)
left=$(ls -A "$work/swapdir")
if [ "${written:-0}" -gt 0 ] && [ -z "$left" ]; then
	case_ok swapfile-directory-used "written_back_pages $written, directory left empty"
else
	case_fail swapfile-directory-used "written_back_pages ${written:-missing}, left in the directory: '$left'"
fi

compare_run swapfile-new-file 32 120 --zswap-max 4M --swapfile "$work/swapdir/new" -- \
	"$progs/fill_random" 64 1
if [ ! -e "$work/swapdir/new" ]; then
	case_ok swapfile-new-file-unlinked
else
	case_fail swapfile-new-file-unlinked "$work/swapdir/new left behind"
fi

echo keep >"$work/existing"
expect_error swapfile-existing-file 1 "--swapfile .*existing exists and is not a directory" \
	"$uz" run --swapfile "$work/existing" -- true
if [ "$(cat "$work/existing")" = keep ]; then
	case_ok swapfile-existing-file-untouched
else
	case_fail swapfile-existing-file-untouched "its content changed"
fi
