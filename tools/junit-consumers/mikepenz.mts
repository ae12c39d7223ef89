// mikepenz/action-junit-report's own parser on a JUnit file: parseTestReports (src/testParser.ts)
// with the inputs' defaults from its action.yml and main.ts. Prints each annotation's path,
// line and title as JSON. Usage: tsx mikepenz.mts CHECKOUT JUNIT_XML [resolve_ignore_classname]
const [checkout, xml, flag] = process.argv.slice(2)
const {parseTestReports} = await import(`${checkout}/src/testParser.ts`)
const result = await parseTestReports(
  'JUnit Test Report', '', xml, '', false, false, false, ['/build/', '/__pycache__/'], '', '/', '', [],
  false, -1, true, false, flag === 'resolve_ignore_classname'
)
console.log(JSON.stringify(result.globalAnnotations.map(a => ({path: a.path, line: a.start_line, title: a.title}))))
