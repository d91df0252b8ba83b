// Entry point of `kiln-dist`: the distributed-compilation scheduler and build server.

process.stderr.write("kiln-dist: distributed compilation is not available in this version yet\n");
process.exit(2);
