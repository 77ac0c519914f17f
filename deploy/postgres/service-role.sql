-- One service's least-privilege PostgreSQL setup: its own login role and its own schema,
-- owned by that role. The role gets no CREATE on the database and no access to any other
-- service's schema; meetplane finds its schema and creates its tables inside it.
--
-- Run once per service (rooms, meetings, recordings, janitor), as an administrator,
-- connected to the database the services use:
--
--   psql "postgresql://admin@db:5432/meetplane" -v ON_ERROR_STOP=1 \
--        -v role=meetplane_rooms -v schema=rooms -v password="$ROOMS_PASSWORD" \
--        -v connection_limit=40 -f deploy/postgres/service-role.sql
--
-- then give the service `MEETPLANE_ROOMS_POSTGRES_DSN=postgresql://meetplane_rooms:...@db:5432/meetplane`
-- (the schema name is the service's name unless MEETPLANE_<SERVICE>_POSTGRES_SCHEMA says
-- otherwise). Re-running it is harmless: it updates the password and the limit.

SELECT format('CREATE ROLE %I LOGIN', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
ALTER ROLE :"role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE
  PASSWORD :'password' CONNECTION LIMIT :connection_limit;

-- Nobody connects, or makes objects in public, just because they have a login.
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database()) \gexec
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', current_database(), :'role') \gexec

CREATE SCHEMA IF NOT EXISTS :"schema" AUTHORIZATION :"role";
ALTER SCHEMA :"schema" OWNER TO :"role";
REVOKE ALL ON SCHEMA :"schema" FROM PUBLIC;
