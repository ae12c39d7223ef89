// the demo's JS sources
export const table = () => "buckaroo";
