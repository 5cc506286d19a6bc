// API paths the views call, built in one place (ids always URL-encoded).

export const enc = encodeURIComponent;

export const classPath = (cid) => `/v1/classes/${enc(cid)}`;

export const studentPath = (cid, studentId) => `${classPath(cid)}/students/${enc(studentId)}`;

export const sessionPath = (cid, sid) => `${classPath(cid)}/sessions/${enc(sid)}`;
