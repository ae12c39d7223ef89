// dorny/test-reporter's own parser and annotations on a JUnit file, as its local-file mode
// runs them: the files git tracks in the working directory, parse errors on (max-annotations
// > 0). Prints each annotation's path, line and title as JSON.
// Usage: tsx dorny.mts CHECKOUT JUNIT_XML [python-xunit|java-junit|jest-junit]
import * as fs from 'fs'
import {execFileSync} from 'child_process'

const [checkout, xml, reporter = 'python-xunit'] = process.argv.slice(2)
const modules = {
  'java-junit': ['java-junit/java-junit-parser.ts', 'JavaJunitParser'],
  'python-xunit': ['python-xunit/python-xunit-parser.ts', 'PythonXunitParser'],
  'jest-junit': ['jest-junit/jest-junit-parser.ts', 'JestJunitParser']
}
const [file, name] = modules[reporter]
const Parser = (await import(`${checkout}/src/parsers/${file}`))[name]
const {getAnnotations} = await import(`${checkout}/src/report/get-annotations.ts`)
const {normalizeDirPath} = await import(`${checkout}/src/utils/path-utils.ts`)
const trackedFiles = execFileSync('git', ['ls-files', '-z']).toString().split('\u0000').filter(s => s.length > 0)
const parser = new Parser({workDir: normalizeDirPath(process.cwd(), true), trackedFiles, parseErrors: true})
const result = await parser.parse(xml, fs.readFileSync(xml, 'utf8'))
console.log(JSON.stringify(getAnnotations([result], 50).map(a => ({path: a.path, line: a.start_line, title: a.title}))))
