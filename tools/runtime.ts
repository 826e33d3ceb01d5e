/**
 * V8 heap limits the services run with (dev, bench, containers). V8 sizes
 * its heap for the machine, so under load an idle-looking service grows to
 * 300+ MB before it collects; these bounds keep each under 200 MB at a
 * small cost in throughput (see bench/ and the README's Performance).
 * The Dockerfiles set the same NODE_OPTIONS.
 */
export const SERVICE_NODE_OPTIONS = "--max-semi-space-size=8 --max-old-space-size=128";
