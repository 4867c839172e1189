/** `dohd check-config`: validate the configuration and exit (0 valid, 2 invalid). */
import type { CommandModule } from 'yargs';
import { configFrom, withConfigOptions, type ConfigArgs } from './common.js';

export const checkConfigCommand: CommandModule<object, ConfigArgs> = {
  command: 'check-config',
  describe: 'validate the configuration and exit',
  builder: (y) => withConfigOptions(y) as never,
  handler: (args) => {
    const c = configFrom(args);
    process.stdout.write(
      `configuration OK: listen ${c.listen.join(', ')}; upstreams ${c.upstreams.map((u) => (u.alternates?.length ? `${u.url} (+${u.alternates.map((a) => a.url).join(', ')})` : u.url)).join(', ')}; ${Object.keys(c.pins).length} pins\n`,
    );
  },
};
