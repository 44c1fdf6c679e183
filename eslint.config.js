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
  }
)
