// Lint: typescript-eslint's recommended rules over every TypeScript source of the package.
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['node_modules/**', '**/*.js', '!eslint.config.js'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      'no-console': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }]
    }
  },
  {
    // the CLI and benchmarks talk to a person through the console
    files: ['agent/src/cli/**/*.ts', 'bench/**/*.ts', 'fixtures/bin/**/*.ts'],
    rules: { 'no-console': 'off' }
  },
  {
    // product code never imports test material
    files: ['agent/**/*.ts', 'native/**/*.ts', 'scheduler/**/*.ts', 'zomes-ts/**/*.ts', 'lib/**/*.ts', 'bin/**/*.ts'],
    ignores: ['**/test/**'],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ group: ['**/fixtures/**'], message: 'product code imports nothing from fixtures/' }] }] }
  },
  {
    // the scheduler is pure algorithms: nothing from the agent (its errors come from lib/)
    files: ['scheduler/**/*.ts'],
    ignores: ['**/test/**'],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ group: ['**/agent/**', '**/native/**', '**/fixtures/**'], message: 'scheduler/ imports nothing from agent/, native/ or fixtures/' }] }] }
  }
)
