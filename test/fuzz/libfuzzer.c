/*
 * libfuzzer.c - fuzz.c as a libFuzzer target (make fuzz-libfuzzer).
 *
 * libFuzzer runs every input in this one process; a broken invariant or
 * a hang aborts it, and libFuzzer then writes the input that did it as
 * crash-* in the working directory (see README for reproducing it).
 */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (fuzz_init() != 0)
		abort();
	fuzz_set_label("the current libFuzzer input");
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_one(data, size);
	return 0;
}
