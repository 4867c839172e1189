/** Longest-suffix lookup of a name in a map keyed by zones (forward rules, local zones). */

/**
 * The value of the closest enclosing zone of `lname` (lower-cased, no trailing dot) in `zones`:
 * the name itself, then each parent in turn; undefined when none is there. Allocates only the
 * parent names it tries.
 */
export function closestZone<T>(zones: ReadonlyMap<string, T>, lname: string): T | undefined {
  let name = lname;
  for (;;) {
    const v = zones.get(name);
    if (v !== undefined) return v;
    const dot = name.indexOf('.');
    if (dot < 0) return undefined;
    name = name.slice(dot + 1);
  }
}
