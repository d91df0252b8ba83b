#include <string.h>
#include "calc.h"

#define SLOTS 64
static struct { char name[32]; double value; int used; } slots[SLOTS];

static unsigned hash(const char *s) {
  unsigned h = 2166136261u;
  while (*s) h = (h ^ (unsigned char)*s++) * 16777619u;
  return h;
}

int table_set(const char *name, double value) {
  for (unsigned i = 0, h = hash(name); i < SLOTS; i++) {
    unsigned k = (h + i) % SLOTS;
    if (!slots[k].used || strcmp(slots[k].name, name) == 0) {
      strncpy(slots[k].name, name, sizeof slots[k].name - 1);
      slots[k].value = value;
      slots[k].used = 1;
      return 1;
    }
  }
  return 0;
}

int table_get(const char *name, double *value) {
  for (unsigned i = 0, h = hash(name); i < SLOTS; i++) {
    unsigned k = (h + i) % SLOTS;
    if (!slots[k].used) return 0;
    if (strcmp(slots[k].name, name) == 0) { *value = slots[k].value; return 1; }
  }
  return 0;
}
