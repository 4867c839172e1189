/** The `dohd` command line (loaded by cli.ts). Each command lives beside it in src/cli/. */
import yargs, { type CommandModule } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { checkConfigCommand } from './check-config.js';
import { fail } from './common.js';
import { writeError } from '../log/log.js';
import { explainUnknownArguments } from './unknown-args.js';
import { doctorCommand } from './doctor.js';
import { pinsCommand } from './pins.js';
import { proxyDnsCommand } from './proxy-dns.js';
import { queryCommand } from './query.js';
import { runCommand } from './run.js';
import { statusCommand } from './status.js';

const commands: CommandModule<object, never>[] = [
  runCommand as never,
  checkConfigCommand as never,
  queryCommand as never,
  doctorCommand as never,
  pinsCommand as never,
  proxyDnsCommand as never,
  statusCommand as never,
];

const SHELLS = ['bash', 'zsh'];

export async function main(argv = hideBin(process.argv)): Promise<void> {
  // `dohd completion zsh`: yargs picks the script by $SHELL when it starts; the word chooses instead.
  if (argv[0] === 'completion' && argv[1] !== undefined && !argv[1].startsWith('-')) {
    if (!SHELLS.includes(argv[1])) fail(`completion: no script for "${argv[1]}"; give one of ${SHELLS.join(', ')}`, 2);
    process.env.SHELL = `/bin/${argv[1]}`;
    if (argv[1] === 'bash') delete process.env.ZSH_NAME;
    argv = ['completion'];
  }
  let y = yargs(argv).scriptName('dohd').usage('$0 <command> [options]');
  for (const c of commands) y = y.command(c);
  await y
    .completion('completion', 'print the shell completion script: dohd completion [bash|zsh] (e.g. >> ~/.bashrc, or > "${fpath[1]}/_dohd")')
    .demandCommand(1, `name a command: ${commands.map((c) => String(c.command).split(' ')[0]).join(', ')}, completion`)
    .strict()
    .help()
    .version()
    .fail((msg, err, usage) => {
      if (err) throw err;
      const names = commands.map((c) => String(c.command).split(' ')[0]!);
      const flags = Object.keys((usage as unknown as { getDescriptions(): Record<string, unknown> }).getDescriptions?.() ?? {});
      const command = argv.find((a) => names.includes(a));
      const help = command ? `dohd ${command} --help` : 'dohd --help';
      fail(`${explainUnknownArguments(msg ?? '', argv, flags, names) ?? msg} (see ${help})`, 2);
    })
    .parseAsync();
}

main().catch((err: unknown) => {
  writeError(`dohd: unexpected error: ${(err as Error)?.stack ?? String(err)}`);
  process.exit(70);
});
